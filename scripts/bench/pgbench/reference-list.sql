-- Fixed reference (a) for "list": the plainest transaction doing the same
-- work as GET /api/tasks. Variables: users (count), set with -D.
\set uid random(1, :users)
BEGIN;
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub":"bench-user-' || :uid || '"}', true);
SELECT id, user_id, title, description, completed, created_at, updated_at FROM api.tasks ORDER BY created_at DESC, id DESC;
COMMIT;
