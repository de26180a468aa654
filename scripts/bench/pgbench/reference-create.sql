-- Fixed reference (a) for "create": insert one task returning it.
\set uid random(1, :users)
BEGIN;
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub":"bench-user-' || :uid || '"}', true);
INSERT INTO api.tasks (title, description, completed) VALUES ('benchmark task', NULL, false) RETURNING id, user_id, title, description, completed, created_at, updated_at;
COMMIT;
