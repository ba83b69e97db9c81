# In the shape of terraform-aws-modules/autoscaling v3 (written for c7n-imds): the
# group's launch_configuration is a conditional over the module's own configuration and
# one passed in - the module idiom c7n-left cannot evaluate (it reads null).
variable "name" {
  default = "web"
}
variable "create_lc" {
  default = true
}
variable "create_asg" {
  default = true
}
variable "launch_configuration" {
  default = ""
}
variable "image_id" {
  default = "ami-12c6146b"
}
variable "instance_type" {
  default = "t3.micro"
}
variable "security_groups" {
  type    = list(string)
  default = []
}

resource "aws_launch_configuration" "this" {
  count = var.create_lc ? 1 : 0

  name_prefix                 = "${var.name}-"
  image_id                    = var.image_id
  instance_type               = var.instance_type
  security_groups             = var.security_groups
  associate_public_ip_address = false
  enable_monitoring           = true

  root_block_device {
    volume_size = 20
    volume_type = "gp3"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "this" {
  count = var.create_asg ? 1 : 0

  name_prefix          = "${var.name}-"
  launch_configuration = var.create_lc ? element(concat(aws_launch_configuration.this.*.name, [""]), 0) : var.launch_configuration
  availability_zones   = ["us-east-1a"]
  min_size             = 0
  max_size             = 2

  lifecycle {
    create_before_destroy = true
  }
}

# disabled as written: no instance, not a finding and not "not evaluated"
resource "aws_launch_configuration" "unused" {
  count         = 0
  image_id      = var.image_id
  instance_type = var.instance_type
}
