-- The v1 product: a video meeting platform on Supabase-style auth.
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
$$;

-- Epic 1 tables: protected, they hold what users paid for.
CREATE TABLE users (
  id bigserial PRIMARY KEY,
  clerk_id text NOT NULL UNIQUE,
  email text NOT NULL,
  name text,
  tier text NOT NULL DEFAULT 'free',
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_select_own ON users FOR SELECT USING (clerk_id = auth.uid());

CREATE TABLE ai_usage_tracking (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  model text NOT NULL,
  tokens integer NOT NULL,
  cost_cents integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_usage_tracking_user_id_idx ON ai_usage_tracking (user_id);

CREATE TABLE usage_alerts (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  threshold_percent integer NOT NULL,
  triggered_at timestamptz NOT NULL DEFAULT now()
);

-- v1 video tables: replaced by v2.
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

INSERT INTO users (clerk_id, email, name, tier, created_at)
SELECT 'user_' || i, 'user' || i || '@example.com', 'User ' || i,
       (ARRAY['free', 'pro', 'team'])[1 + i % 3], now() - i * interval '1 hour'
  FROM generate_series(1, 200) i;
INSERT INTO ai_usage_tracking (user_id, model, tokens, cost_cents, created_at)
SELECT 1 + i % 200, (ARRAY['gpt-4o', 'claude', 'mini'])[1 + i % 3], 100 + i * 7 % 5000, 1 + i % 90,
       now() - i * interval '5 minutes'
  FROM generate_series(1, 2000) i;
INSERT INTO usage_alerts (user_id, threshold_percent)
SELECT 1 + i * 4, (ARRAY[50, 80, 100])[1 + i % 3] FROM generate_series(0, 49) i;
INSERT INTO meetings (host_id, title, started_at, ended_at)
SELECT 1 + i % 200, 'Meeting ' || i, now() - i * interval '1 day', now() - i * interval '1 day' + interval '45 minutes'
  FROM generate_series(1, 300) i;
INSERT INTO participants (meeting_id, user_id, joined_at)
SELECT m, 1 + (m * 7 + k) % 200, now() - m * interval '1 day'
  FROM generate_series(1, 300) m, generate_series(1, 3) k;
INSERT INTO messages (meeting_id, user_id, body, sent_at)
SELECT 1 + i % 300, 1 + i % 200, 'message ' || md5(i::text), now() - i * interval '1 minute'
  FROM generate_series(1, 3000) i;
