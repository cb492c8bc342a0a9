-- v2.0: from video platform to client memory assistant.
DROP TABLE messages;
DROP TABLE participants;
DROP TABLE meetings;

CREATE TABLE clients (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  name text NOT NULL,
  company text,
  notes text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE meetings (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  title text NOT NULL,
  meeting_date date NOT NULL,
  transcript text,
  summary text
);
CREATE TABLE action_items (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  meeting_id bigint NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
  description text NOT NULL,
  done boolean NOT NULL DEFAULT false,
  due_date date
);
CREATE INDEX clients_user_id_idx ON clients (user_id);
CREATE INDEX meetings_client_id_idx ON meetings (client_id);
CREATE INDEX meetings_user_id_date_idx ON meetings (user_id, meeting_date DESC);
CREATE INDEX action_items_meeting_id_idx ON action_items (meeting_id);
CREATE INDEX action_items_user_id_idx ON action_items (user_id) WHERE NOT done;

ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE meetings ENABLE ROW LEVEL SECURITY;
ALTER TABLE action_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY clients_own ON clients
  USING (user_id = (SELECT id FROM users WHERE clerk_id = auth.uid()));
CREATE POLICY meetings_own ON meetings
  USING (user_id = (SELECT id FROM users WHERE clerk_id = auth.uid()));
CREATE POLICY action_items_own ON action_items
  USING (user_id = (SELECT id FROM users WHERE clerk_id = auth.uid()));
