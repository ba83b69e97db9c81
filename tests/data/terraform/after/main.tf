# The fixed version of ../before: the launch configuration became a launch template
# requiring IMDSv2, the group launches from it, and every template and instance sets
# http_tokens = "required".
resource "aws_launch_template" "web" {
  name_prefix   = "web-"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
  metadata_options {
    http_tokens   = "required"
    http_endpoint = "enabled"
  }
}

resource "aws_launch_template" "svc" {
  name          = "svc"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
  metadata_options {
    http_tokens = "required"
  }
}

resource "aws_autoscaling_group" "web" {
  name               = "web"
  min_size           = 0
  max_size           = 2
  availability_zones = ["us-east-1a"]
  launch_template {
    id      = aws_launch_template.web.id
    version = aws_launch_template.web.latest_version
  }
}

resource "aws_instance" "bastion" {
  ami           = "ami-12c6146b"
  instance_type = "t3.micro"
  metadata_options {
    http_tokens = "required"
  }
}

resource "aws_launch_template" "hardened" {
  name          = "hardened"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}
