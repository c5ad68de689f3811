"""The backup service: scheduled, encrypted, off-site, verified backups of every CRM database."""
