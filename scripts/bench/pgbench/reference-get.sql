-- Fixed reference (a) for "get one": select one task by id. Seeded task ids
-- are md5('<user>-<n>')::uuid, so any user's n-th task can be named.
\set uid random(1, :users)
\set n random(1, :tasks)
BEGIN;
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub":"bench-user-' || :uid || '"}', true);
SELECT id, user_id, title, description, completed, created_at, updated_at FROM api.tasks WHERE id = md5('bench-user-' || :uid || '-' || :n)::uuid;
COMMIT;
