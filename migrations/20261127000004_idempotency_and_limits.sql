-- migrate:up

-- Idempotency-Key support for POST /tasks, and the per-user task limit.

-- Owns the one function that deletes other users' expired idempotency keys
-- (api.purge_expired_idempotency_keys). Nobody logs in as it and no role the
-- gateway reaches is a member of it.
do $$
begin
  if not exists (select from pg_roles where rolname = 'idempotency_janitor') then
    create role idempotency_janitor nologin noinherit;
  end if;
end
$$;
alter role idempotency_janitor nologin nocreatedb nocreaterole;
-- As in the roles migration: SUPERUSER and BYPASSRLS only when actually set.
do $$
begin
  if (select rolsuper from pg_roles where rolname = 'idempotency_janitor') then
    alter role idempotency_janitor nosuperuser;
  end if;
  if (select rolbypassrls from pg_roles where rolname = 'idempotency_janitor') then
    alter role idempotency_janitor nobypassrls;
  end if;
end
$$;
grant idempotency_janitor to current_user;

-- One row per (user, key): the request's fingerprint and the response it got,
-- so a retry within 24 hours is answered with the original response.
create table if not exists api.idempotency_keys (
  user_id      text        not null default api.current_user_id(),
  key          text        not null,
  -- sha256 of the canonical JSON of the request body.
  request_hash text        not null,
  -- The task as the original 201 response returned it.
  response     jsonb       not null,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz not null default now() + interval '24 hours',

  primary key (user_id, key),
  constraint idempotency_keys_user_id_present check (user_id <> ''),
  constraint idempotency_keys_key_length check (char_length(key) between 1 and 255)
);

comment on table api.idempotency_keys is
  'Idempotency-Key records of POST /tasks, kept 24 hours. Row-level security: policies/idempotency_keys.sql.';

create index if not exists idempotency_keys_expires_at_idx on api.idempotency_keys (expires_at);

alter table api.idempotency_keys enable row level security;
alter table api.idempotency_keys force row level security;

grant select, delete on api.idempotency_keys to authenticated;
grant insert (key, request_hash, response) on api.idempotency_keys to authenticated;
grant usage on schema api to idempotency_janitor;
grant select (expires_at), delete on api.idempotency_keys to idempotency_janitor;

-- Deletes every expired key, of any user. Runs as idempotency_janitor, whose
-- only policies let it see and delete rows that have expired.
create or replace function api.purge_expired_idempotency_keys()
returns integer
language sql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
  with expired as (
    delete from api.idempotency_keys where expires_at < now() returning 1
  )
  select count(*)::integer from expired
$$;

grant create on schema api to idempotency_janitor;
alter function api.purge_expired_idempotency_keys() owner to idempotency_janitor;
revoke create on schema api from idempotency_janitor;
revoke execute on function api.purge_expired_idempotency_keys() from public;
grant execute on function api.purge_expired_idempotency_keys() to authenticated;

-- The per-user task limit. The gateway sets task_api.max_tasks_per_user for
-- each transaction from MAX_TASKS_PER_USER; 10000 when unset.
create or replace function api.max_tasks_per_user()
returns integer
language sql
stable
as $$
  select coalesce(nullif(current_setting('task_api.max_tasks_per_user', true), '')::integer, 10000)
$$;

grant execute on function api.max_tasks_per_user() to authenticated;

-- Every insert, through create_task or straight into the table (as
-- PostgREST would), is refused beyond the limit with PT409 (-> 409). A
-- transaction-scoped advisory lock per user serializes one user's inserts,
-- so concurrent requests cannot overshoot the limit together. The count runs
-- as the inserting user, under row-level security: their own tasks only.
create or replace function api.tasks_enforce_limit()
returns trigger
language plpgsql
as $$
declare
  owner_id text := api.current_user_id();
  task_count bigint;
begin
  -- Without claims (the owner maintaining data) there is no user to limit.
  if owner_id is null then
    return new;
  end if;

  perform pg_advisory_xact_lock(hashtextextended('api.tasks:' || owner_id, 0));
  select count(*) into task_count from api.tasks where user_id = owner_id;
  if task_count >= api.max_tasks_per_user() then
    raise exception 'task limit of % tasks per user reached; delete some tasks first', api.max_tasks_per_user()
      using errcode = 'PT409', detail = 'task-limit-reached';
  end if;
  return new;
end
$$;

drop trigger if exists tasks_enforce_limit on api.tasks;
create trigger tasks_enforce_limit
  before insert on api.tasks
  for each row execute function api.tasks_enforce_limit();

-- POST /tasks with an Idempotency-Key. p_request is the request body as JSON.
-- Returns the new task and replayed = false, or, for a repeat of the same
-- request within 24 hours, the original response and replayed = true.
--   PT409  the same key is in use by a request still running   -> 409
--   PT422  the key was used with a different request body      -> 422
create or replace function api.create_task_idempotent(p_key text, p_request jsonb)
returns table (task jsonb, replayed boolean)
language plpgsql
volatile
as $$
declare
  owner_id text := api.current_user_id();
  request_hash text := encode(sha256(convert_to(p_request::text, 'UTF8')), 'hex');
  previous api.idempotency_keys;
  created api.tasks;
begin
  -- Not waiting: a duplicate that arrives while the first is running is
  -- told so at once (409) instead of queueing behind it.
  if not pg_try_advisory_xact_lock(hashtextextended('api.idempotency_keys:' || coalesce(owner_id, '') || ':' || p_key, 0)) then
    raise exception 'a request with this Idempotency-Key is still in progress'
      using errcode = 'PT409', detail = 'idempotency-key-in-use';
  end if;

  select * into previous from api.idempotency_keys k
   where k.user_id = owner_id and k.key = p_key;

  if found and previous.expires_at > now() then
    if previous.request_hash <> request_hash then
      raise exception 'this Idempotency-Key was used with a different request body'
        using errcode = 'PT422';
    end if;
    return query select previous.response, true;
    return;
  end if;

  if found then
    delete from api.idempotency_keys k where k.user_id = owner_id and k.key = p_key;
  end if;

  -- Expired keys are swept as a side effect of use: no scheduled job needed.
  if random() < 0.01 then
    perform api.purge_expired_idempotency_keys();
  end if;

  created := api.create_task(
    p_request ->> 'title',
    p_request ->> 'description',
    coalesce((p_request -> 'completed')::boolean, false)
  );

  insert into api.idempotency_keys (key, request_hash, response)
  values (p_key, request_hash, to_jsonb(created));

  return query select to_jsonb(created), false;
end
$$;

grant execute on function api.create_task_idempotent(text, jsonb) to authenticated;

-- migrate:down

drop function if exists api.create_task_idempotent(text, jsonb);

drop trigger if exists tasks_enforce_limit on api.tasks;
drop function if exists api.tasks_enforce_limit();
drop function if exists api.max_tasks_per_user();
drop function if exists api.purge_expired_idempotency_keys();
drop table if exists api.idempotency_keys;
revoke usage on schema api from idempotency_janitor;

do $$
begin
  drop role if exists idempotency_janitor;
exception when dependent_objects_still_exist then
  raise notice 'role idempotency_janitor kept: objects in another database depend on it';
end
$$;
