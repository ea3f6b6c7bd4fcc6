# The example's inputs. Only enroll_token, collector_url, vpc_id and the subnets have no
# default; give them in a terraform.tfvars that is not committed, or TF_VAR_enroll_token.

variable "enroll_token" {
  description = "The collector's [enrollment] token (openssl rand -hex 32). Each app server enrols with it once, at first boot, and keeps a credential of its own."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.enroll_token) >= 24 && can(regex("^[A-Za-z0-9._~+/=:@%,-]+$", var.enroll_token))
    error_message = "enroll_token: at least 24 characters, of letters, digits and ._~+/=:@%,- (openssl rand -hex 32)."
  }
}

variable "collector_url" {
  description = "The collector's base URL as the app servers reach it, e.g. https://lookout.internal:7700 (a private DNS name on the collector's certificate)."
  type        = string

  validation {
    condition     = can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]+)?$", var.collector_url))
    error_message = "collector_url: http(s)://host[:port], with no path."
  }
}

variable "collector_ca_pem" {
  description = "The PEM of the private CA that signs the collector's certificate, for curl's first request; empty when the system's roots verify it."
  type        = string
  default     = ""
}

variable "agent_labels" {
  description = "Labels each app server's agent claims (the collector's [enrollment] labels win): k=v,..."
  type        = string
  default     = "role=app,env=production"

  validation {
    condition     = can(regex("^([A-Za-z0-9_-]+=[A-Za-z0-9._:/@+-]+)(,[A-Za-z0-9_-]+=[A-Za-z0-9._:/@+-]+)*$", var.agent_labels))
    error_message = "agent_labels: k=v pairs separated by commas."
  }
}

variable "region" {
  description = "The AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "The VPC of the app servers and the collector."
  type        = string
}

variable "app_subnet_ids" {
  description = "Private subnets of the app servers (spread over them in turn)."
  type        = list(string)
}

variable "collector_subnet_id" {
  description = "The private subnet of the collector."
  type        = string
}

variable "app_server_count" {
  description = "How many app servers (the seed's production picture starts with 2)."
  type        = number
  default     = 2
}

variable "app_instance_type" {
  description = "The app servers' instance type."
  type        = string
  default     = "t3.medium"
}

variable "collector_instance_type" {
  description = "The collector's instance type."
  type        = string
  default     = "t3.small"
}

variable "collector_port" {
  description = "The collector's port ([server] listen): agents ship to it."
  type        = number
  default     = 7700
}

variable "ami_id" {
  description = "The servers' image; empty: the newest Debian 12 (bookworm) for amd64."
  type        = string
  default     = ""
}
