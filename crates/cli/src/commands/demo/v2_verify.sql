-- The runbook's checks, as assertions inside the migration's transaction.
DO $$
BEGIN
  IF to_regclass('public.clients') IS NULL OR to_regclass('public.action_items') IS NULL THEN
    RAISE EXCEPTION 'v2.0 tables not created';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_class
              WHERE relname IN ('clients', 'meetings', 'action_items')
                AND relnamespace = 'public'::regnamespace AND NOT relrowsecurity) THEN
    RAISE EXCEPTION 'RLS is not enabled on every v2.0 table';
  END IF;
END
$$;
