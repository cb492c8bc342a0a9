-- v2.0 with the runbook's feared typo: users instead of meetings.
DROP TABLE messages;
DROP TABLE participants;
DROP TABLE users CASCADE;
CREATE TABLE clients (id bigserial PRIMARY KEY, name text NOT NULL);
