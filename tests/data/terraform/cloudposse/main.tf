locals {
  enabled = module.this.enabled
}

resource "aws_launch_template" "default" {
  count = module.this.enabled ? 1 : 0

  name_prefix = format("%s%s", module.this.id, module.this.delimiter)
  image_id    = "ami-12c6146b"

  metadata_options {
    http_tokens = "optional"
  }
}

resource "aws_autoscaling_group" "default" {
  count = local.enabled ? 1 : 0

  name_prefix        = format("%s%s", module.this.id, module.this.delimiter)
  availability_zones = ["us-east-1a"]
  min_size           = 0
  max_size           = 1

  launch_template {
    id      = join("", aws_launch_template.default.*.id)
    version = "$Latest"
  }
}
