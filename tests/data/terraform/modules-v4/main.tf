# In the shape of terraform-aws-modules/autoscaling v4 (written for c7n-imds): a launch
# template with dynamic metadata_options followed by lifecycle (tfparse drops such a
# dynamic block), and a group choosing a launch template or a mixed instances policy
# with dynamic blocks.
variable "name" {
  default = "api"
}
variable "use_lt" {
  default = true
}
variable "use_mixed_instances_policy" {
  default = false
}
variable "metadata_options" {
  type = map(string)
  default = {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
}
variable "lt_version" {
  default = "$Latest"
}

resource "aws_launch_template" "this" {
  name_prefix   = "${var.name}-"
  image_id      = "ami-12c6146b"
  instance_type = "t3.small"

  dynamic "metadata_options" {
    for_each = length(var.metadata_options) > 0 ? [var.metadata_options] : []
    content {
      http_endpoint               = lookup(metadata_options.value, "http_endpoint", null)
      http_tokens                 = lookup(metadata_options.value, "http_tokens", null)
      http_put_response_hop_limit = lookup(metadata_options.value, "http_put_response_hop_limit", null)
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

# a template that leaves IMDSv1 on (no metadata options at all): a finding
resource "aws_launch_template" "legacy" {
  name_prefix = "${var.name}-legacy-"
  image_id    = "ami-12c6146b"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_autoscaling_group" "this" {
  name_prefix        = "${var.name}-"
  availability_zones = ["us-east-1a"]
  min_size           = 0
  max_size           = 2

  dynamic "launch_template" {
    for_each = var.use_lt && !var.use_mixed_instances_policy ? [true] : []
    content {
      id      = aws_launch_template.this.id
      version = var.lt_version
    }
  }

  dynamic "mixed_instances_policy" {
    for_each = var.use_mixed_instances_policy ? [true] : []
    content {
      launch_template {
        launch_template_specification {
          launch_template_id = aws_launch_template.this.id
        }
      }
    }
  }

  tag {
    key                 = "Name"
    value               = var.name
    propagate_at_launch = true
  }
}
