-- Back to v1: remove the v2.0 tables, recreate the v1 video tables exactly.
DROP TABLE action_items;
DROP TABLE meetings;
DROP TABLE clients;

CREATE TABLE meetings (
  id bigserial PRIMARY KEY,
  host_id bigint NOT NULL REFERENCES users (id),
  title text NOT NULL,
  started_at timestamptz NOT NULL,
  ended_at timestamptz
);
CREATE TABLE participants (
  meeting_id bigint NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES users (id),
  joined_at timestamptz NOT NULL,
  PRIMARY KEY (meeting_id, user_id)
);
CREATE TABLE messages (
  id bigserial PRIMARY KEY,
  meeting_id bigint NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
  user_id bigint NOT NULL REFERENCES users (id),
  body text NOT NULL,
  sent_at timestamptz NOT NULL
);
