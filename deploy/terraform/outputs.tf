output "app_private_ips" {
  description = "The app servers' private addresses."
  value       = aws_instance.app[*].private_ip
}

output "collector_private_ip" {
  description = "The collector's private address (point collector_url's name at it)."
  value       = aws_instance.collector.private_ip
}

output "collector_security_group_id" {
  description = "The collector's security group: its port is open to the app servers' group only."
  value       = aws_security_group.collector.id
}
