-- Not a baseline: "list" with the JSON built inside PostgreSQL (json_agg), to
-- measure what moving serialization into the database costs the database.
\set uid random(1, :users)
BEGIN;
SELECT set_config('role', 'authenticated', true), set_config('request.jwt.claims', '{"sub":"bench-user-' || :uid || '"}', true);
SELECT coalesce(json_agg(t ORDER BY t.created_at DESC, t.id DESC), '[]') FROM (SELECT id, user_id, title, description, completed, created_at, updated_at FROM api.tasks) t;
COMMIT;
