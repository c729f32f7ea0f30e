"""What runs beside the hub: the reference executor, the fleet simulator, deployment files."""
