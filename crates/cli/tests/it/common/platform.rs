//! What the platform tests share: a Supabase-shaped database's project
//! (its first migration hangs a trigger on `auth.users`) and reading
//! rights on the whole platform for its owner, as a hosted platform
//! gives them (so the owner's dumps are whole).

/// A profile per user, made by a trigger on `auth.users`.
pub const PROFILES: &str = "create table public.profiles (\n\
    id uuid primary key references auth.users (id) on delete cascade,\n\
    email text);\n\
create function public.handle_new_user() returns trigger language plpgsql security definer\n\
  set search_path = public as $$\n\
begin\n\
  insert into public.profiles (id, email) values (new.id, new.email);\n\
  return new;\n\
end $$;\n\
create trigger on_auth_user_created after insert on auth.users\n\
  for each row execute function public.handle_new_user();\n";

/// Makes the platform (`fixtures/platform/supabase_full.sql`) in the
/// database of `admin`, a superuser's session.
pub fn make(admin: &mut postgres::Client) {
    let fixture =
        std::fs::read_to_string(super::fixture_path("platform/supabase_full.sql")).unwrap();
    admin.batch_execute(&fixture).expect("the platform is made");
}

/// The statement that lets `role` use every schema and read every table
/// and sequence of the database.
pub fn reading_all(role: &str) -> String {
    format!(
        "DO $$ DECLARE s text; BEGIN
           FOR s IN SELECT nspname FROM pg_namespace WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema' LOOP
             EXECUTE format('GRANT USAGE ON SCHEMA %I TO {role}', s);
             EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {role}', s);
             EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO {role}', s);
           END LOOP;
         END $$;"
    )
}

/// The statements that make a platform table `role` may use the schema of
/// but not read, nor change: Supabase's database webhooks,
/// `supabase_functions.hooks` (one row) and its id sequence.
pub fn hooks_unreadable_by(role: &str) -> String {
    format!(
        "CREATE SCHEMA supabase_functions;
         GRANT USAGE ON SCHEMA supabase_functions TO {role};
         CREATE TABLE supabase_functions.hooks (id bigserial primary key, hook_name text not null);
         INSERT INTO supabase_functions.hooks (hook_name) VALUES ('on_signup');"
    )
}
