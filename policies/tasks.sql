-- Row-level security for api.tasks: a task is visible to, and changeable by,
-- only the user whose JWT sub is in its user_id.
--
-- Applied after every migration run, in one transaction. It first drops every
-- policy on the table, so this file is the complete list: a policy that is
-- not written here does not exist.
--
-- (select api.current_user_id()) is wrapped in a sub-select so PostgreSQL
-- evaluates it once per statement (an InitPlan) instead of once per row, and
-- can use it as an index key for tasks_user_id_created_at_id_idx.
--
-- With no claims set, api.current_user_id() is NULL, user_id = NULL is never
-- true, and every policy below matches nothing.

alter table api.tasks enable row level security;
-- FORCE: the table owner is subject to the policies too.
alter table api.tasks force row level security;

do $$
declare
  policy record;
begin
  for policy in
    select policyname from pg_policies where schemaname = 'api' and tablename = 'tasks'
  loop
    execute format('drop policy %I on api.tasks', policy.policyname);
  end loop;
end
$$;

create policy tasks_select_own on api.tasks
  for select to authenticated
  using (user_id = (select api.current_user_id()));

-- WITH CHECK: a user cannot create a task owned by someone else.
create policy tasks_insert_own on api.tasks
  for insert to authenticated
  with check (user_id = (select api.current_user_id()));

-- USING picks the rows a user may change; WITH CHECK stops a change from
-- handing the row to another user.
create policy tasks_update_own on api.tasks
  for update to authenticated
  using (user_id = (select api.current_user_id()))
  with check (user_id = (select api.current_user_id()));

create policy tasks_delete_own on api.tasks
  for delete to authenticated
  using (user_id = (select api.current_user_id()));

-- api.task_exists() runs as task_probe to answer "does this id exist at all?"
-- so the API can answer 403 rather than 404 for another user's task. The
-- role can read the id column only (see the grants in migrations/), nobody
-- can log in as it, and no role the gateway reaches is a member of it.
create policy tasks_probe_existence on api.tasks
  for select to task_probe
  using (true);
