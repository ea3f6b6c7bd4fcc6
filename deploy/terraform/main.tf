# Lookout in the seed's production picture: two app servers, each with an agent installed at
# first boot by cloud-init (the collector's one command), and a collector whose port only the
# app servers reach. The app's load balancer, RDS and ElastiCache are the seed's own module's;
# this adds what Lookout needs beside them (docs/deployment.md "Terraform").

provider "aws" {
  region = var.region
}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian's own account
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
}

locals {
  ami = var.ami_id != "" ? var.ami_id : data.aws_ami.debian.id
}

# ---- Security groups ----

resource "aws_security_group" "app" {
  name_prefix = "app-"
  description = "App servers (each runs a Lookout agent)"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "collector" {
  name_prefix = "lookout-collector-"
  description = "The Lookout collector"
  vpc_id      = var.vpc_id
}

# The collector's port, from the app servers' group and nothing else.
resource "aws_vpc_security_group_ingress_rule" "collector_from_app_servers" {
  security_group_id            = aws_security_group.collector.id
  referenced_security_group_id = aws_security_group.app.id
  ip_protocol                  = "tcp"
  from_port                    = var.collector_port
  to_port                      = var.collector_port
  description                  = "Lookout agents on the app servers ship to the collector"
}

# Out: the agents to the collector and their checks' targets; the collector to PostgreSQL,
# SMTP and webhooks; both to the package mirrors.
resource "aws_vpc_security_group_egress_rule" "app_out" {
  security_group_id = aws_security_group.app.id
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  description       = "App servers reach out"
}

resource "aws_vpc_security_group_egress_rule" "collector_out" {
  security_group_id = aws_security_group.collector.id
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  description       = "The collector reaches out (database, notifications)"
}

# ---- Servers ----

resource "aws_instance" "collector" {
  ami                    = local.ami
  instance_type          = var.collector_instance_type
  subnet_id              = var.collector_subnet_id
  vpc_security_group_ids = [aws_security_group.collector.id]
  metadata_options {
    http_tokens = "required"
  }
  tags = {
    Name = "lookout-collector"
  }
}

resource "aws_instance" "app" {
  count                  = var.app_server_count
  ami                    = local.ami
  instance_type          = var.app_instance_type
  subnet_id              = element(var.app_subnet_ids, count.index)
  vpc_security_group_ids = [aws_security_group.app.id]
  # The agent is installed at first boot; a new token or URL does not replace a running
  # server (rerun the install command on it instead).
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    collector_url    = var.collector_url
    enroll_token_b64 = base64encode(var.enroll_token)
    ca_pem_b64       = base64encode(var.collector_ca_pem)
    agent_labels     = var.agent_labels
  })
  user_data_replace_on_change = false
  # User data holds the enrolment token: only IMDSv2, and not from containers (hop limit 1).
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  tags = {
    Name = "app-${count.index + 1}"
    Role = "app"
  }
  depends_on = [aws_instance.collector]
}
