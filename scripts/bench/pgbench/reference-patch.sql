-- Fixed reference (a) for "patch": change one task's title returning it.
\set uid random(1, :users)
\set n random(1, :tasks)
BEGIN;
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub":"bench-user-' || :uid || '"}', true);
UPDATE api.tasks SET title = 'patched title' WHERE id = md5('bench-user-' || :uid || '-' || :n)::uuid RETURNING id, user_id, title, description, completed, created_at, updated_at;
COMMIT;
