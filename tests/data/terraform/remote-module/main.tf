# A module from the registry, not downloaded (no terraform init): its groups and
# templates are invisible to c7n-left.
module "asg" {
  source  = "terraform-aws-modules/autoscaling/aws"
  version = "~> 7.0"

  name               = "workers"
  min_size           = 0
  max_size           = 2
  image_id           = "ami-12c6146b"
  instance_type      = "t3.micro"
  availability_zones = ["us-east-1a"]
}

resource "aws_instance" "bastion" {
  ami           = "ami-12c6146b"
  instance_type = "t3.micro"

  metadata_options {
    http_tokens = "required"
  }
}
