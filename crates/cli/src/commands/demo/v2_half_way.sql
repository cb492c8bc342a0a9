-- v2.0 as first written: the foreign key names a column users does not have.
DROP TABLE messages;
DROP TABLE participants;
DROP TABLE meetings;
CREATE TABLE clients (
  id bigserial PRIMARY KEY,
  user_id uuid NOT NULL,
  name text NOT NULL
);
ALTER TABLE clients
  ADD CONSTRAINT fk_clients_user_id FOREIGN KEY (user_id) REFERENCES users (uuid);
CREATE TABLE action_items (id bigserial PRIMARY KEY, client_id bigint REFERENCES clients (id));
