# The cloudposse convention (written for c7n-imds): every resource is gated by
# module.this.enabled, an output of the null-label module - which c7n-left cannot
# evaluate, so without the gate's report these resources would pass unseen.
module "this" {
  source  = "cloudposse/label/null"
  version = "0.25.0"

  enabled   = var.enabled
  namespace = var.namespace
  name      = var.name
  context   = var.context
}

variable "context" {
  type = any
  default = {
    enabled   = true
    namespace = null
    name      = null
  }
}

variable "enabled" {
  type    = bool
  default = null
}

variable "namespace" {
  type    = string
  default = null
}

variable "name" {
  type    = string
  default = null
}
