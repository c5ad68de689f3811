-- Run by the postgres image once, when its data volume is empty: one database per CRM service.
-- `python -m crm_common.migrate <service>` would create a missing one too; creating them here means
-- replicas starting together never race to create the same database.
CREATE DATABASE crm_clients;
CREATE DATABASE crm_deals;
CREATE DATABASE crm_tasks;
CREATE DATABASE crm_reports;
CREATE DATABASE crm_backup;
CREATE DATABASE crm_webhooks;
CREATE DATABASE crm_gateway;
