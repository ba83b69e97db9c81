resource "aws_launch_configuration" "web" {
  name_prefix   = "web-"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
}

resource "aws_launch_template" "svc" {
  name          = "svc"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
  metadata_options {
    http_tokens = "optional"
  }
}

resource "aws_autoscaling_group" "web" {
  name                 = "web"
  min_size             = 0
  max_size             = 2
  launch_configuration = aws_launch_configuration.web.name
  availability_zones   = ["us-east-1a"]
}

resource "aws_instance" "bastion" {
  ami           = "ami-12c6146b"
  instance_type = "t3.micro"
}

# a launch template that already requires IMDSv2: no finding
resource "aws_launch_template" "hardened" {
  name          = "hardened"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}

# a launch configuration that requires IMDSv2 still fails AutoScaling.9 only
resource "aws_launch_configuration" "hardened_lc" {
  name_prefix   = "hardened-"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"
  metadata_options {
    http_tokens = "required"
  }
}
