"""The one library shared by the CRM services and the gateway: contracts and plumbing, no business rules."""
