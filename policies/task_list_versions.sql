-- Row-level security for api.task_list_versions: a user reads only the
-- version of their own task list (what GET /tasks turns into its ETag), and
-- nobody but the trigger function api.tasks_bump_list_versions(), which runs
-- as task_list_versioner, writes versions.
--
-- Same conventions as policies/tasks.sql: this file is the complete list of
-- the table's policies.

alter table api.task_list_versions enable row level security;
alter table api.task_list_versions force row level security;

do $$
declare
  policy record;
begin
  for policy in
    select policyname from pg_policies where schemaname = 'api' and tablename = 'task_list_versions'
  loop
    execute format('drop policy %I on api.task_list_versions', policy.policyname);
  end loop;
end
$$;

create policy task_list_versions_select_own on api.task_list_versions
  for select to authenticated
  using (user_id = (select api.current_user_id()));

-- The trigger bumps the version of whichever users a statement changed: a
-- user's own write, or the owner's maintenance of anyone's tasks.
create policy task_list_versions_versioner_select on api.task_list_versions
  for select to task_list_versioner
  using (true);

create policy task_list_versions_versioner_insert on api.task_list_versions
  for insert to task_list_versioner
  with check (true);

create policy task_list_versions_versioner_update on api.task_list_versions
  for update to task_list_versioner
  using (true)
  with check (true);
