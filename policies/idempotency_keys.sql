-- Row-level security for api.idempotency_keys: a user sees, records and
-- removes only their own Idempotency-Key records, so keys are per user and
-- one user's key reveals nothing about another's.
--
-- Same conventions as policies/tasks.sql: this file is the complete list of
-- the table's policies, and the claims helper is wrapped in a sub-select so
-- it is evaluated once per statement.

alter table api.idempotency_keys enable row level security;
alter table api.idempotency_keys force row level security;

do $$
declare
  policy record;
begin
  for policy in
    select policyname from pg_policies where schemaname = 'api' and tablename = 'idempotency_keys'
  loop
    execute format('drop policy %I on api.idempotency_keys', policy.policyname);
  end loop;
end
$$;

create policy idempotency_keys_select_own on api.idempotency_keys
  for select to authenticated
  using (user_id = (select api.current_user_id()));

create policy idempotency_keys_insert_own on api.idempotency_keys
  for insert to authenticated
  with check (user_id = (select api.current_user_id()));

create policy idempotency_keys_delete_own on api.idempotency_keys
  for delete to authenticated
  using (user_id = (select api.current_user_id()));

-- api.purge_expired_idempotency_keys() runs as idempotency_janitor: it can
-- see and delete expired records of any user, and nothing else (it may read
-- only the expires_at column; see migrations/).
create policy idempotency_keys_janitor_select_expired on api.idempotency_keys
  for select to idempotency_janitor
  using (expires_at < now());

create policy idempotency_keys_janitor_delete_expired on api.idempotency_keys
  for delete to idempotency_janitor
  using (expires_at < now());
