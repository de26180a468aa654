-- migrate:up

-- Bounded storage per user, and advisory-lock keys that cannot collide.
--
-- A user's stored bytes are the UTF-8 bytes of their tasks' titles and
-- descriptions plus the size of their idempotency records. Together they are
-- capped by task_api.max_bytes_per_user, and the number of live idempotency
-- keys by task_api.max_idempotency_keys_per_user; the gateway sets both per
-- transaction (MAX_BYTES_PER_USER, MAX_IDEMPOTENCY_KEYS_PER_USER). Every
-- check runs in a trigger under the user's advisory lock, the one the task
-- limit takes, so concurrent writes of one user are checked one after the
-- other and cannot overshoot together, whichever path the write takes
-- (the api functions, or plain INSERT/UPDATE as PostgREST would send).

-- The advisory-lock key of a (purpose, part, ...) tuple. The tuple is hashed
-- as a JSON array, so no choice of parts can produce another tuple's text:
-- user 'u' with key 'x:k' and user 'u:x' with key 'k' get different keys.
create or replace function api.advisory_lock_key(variadic p_parts text[])
returns bigint
language sql
immutable
strict
parallel safe
as $$
  select hashtextextended(to_jsonb(p_parts)::text, 0)
$$;

grant execute on function api.advisory_lock_key(text[]) to authenticated;

-- The lock every write that counts against the calling user's limits takes
-- first. Only the caller's own: nobody can hold up another user's writes.
create or replace function api.lock_user_limits()
returns void
language sql
volatile
as $$
  select pg_advisory_xact_lock(api.advisory_lock_key('api.user_limits', api.current_user_id()))
$$;

grant execute on function api.lock_user_limits() to authenticated;

-- The limits, with their defaults when the gateway did not set them. 16 MiB
-- holds 10,000 tasks of a 255-byte title and a 1,400-byte description.
create or replace function api.max_bytes_per_user()
returns bigint
language sql
stable
as $$
  select coalesce(nullif(current_setting('task_api.max_bytes_per_user', true), '')::bigint, 16777216)
$$;

create or replace function api.max_idempotency_keys_per_user()
returns integer
language sql
stable
as $$
  select coalesce(nullif(current_setting('task_api.max_idempotency_keys_per_user', true), '')::integer, 10000)
$$;

grant execute on function api.max_bytes_per_user() to authenticated;
grant execute on function api.max_idempotency_keys_per_user() to authenticated;

-- What one task and one idempotency record count for. octet_length and
-- pg_column_size read the stored size without decompressing the value.
create or replace function api.task_bytes(p_title text, p_description text)
returns bigint
language sql
immutable
parallel safe
as $$
  select octet_length(p_title)::bigint + coalesce(octet_length(p_description), 0)
$$;

create or replace function api.idempotency_record_bytes(p_key text, p_request_hash text, p_response jsonb)
returns bigint
language sql
stable
parallel safe
as $$
  select octet_length(p_key)::bigint + octet_length(p_request_hash) + pg_column_size(p_response)
$$;

grant execute on function api.task_bytes(text, text) to authenticated;
grant execute on function api.idempotency_record_bytes(text, text, jsonb) to authenticated;

-- The calling user's stored bytes (under row-level security, as the caller:
-- their own rows only).
create or replace function api.stored_bytes()
returns bigint
language sql
stable
as $$
  select coalesce((select sum(api.task_bytes(t.title, t.description))
                     from api.tasks t where t.user_id = (select api.current_user_id())), 0)
       + coalesce((select sum(api.idempotency_record_bytes(k.key, k.request_hash, k.response))
                     from api.idempotency_keys k where k.user_id = (select api.current_user_id())), 0)
$$;

grant execute on function api.stored_bytes() to authenticated;

-- Refuses a write that would take the calling user past the byte quota. The
-- caller holds the user's lock; p_added is what the write adds.
create or replace function api.check_byte_quota(p_added bigint)
returns void
language plpgsql
stable
as $$
begin
  if api.stored_bytes() + p_added > api.max_bytes_per_user() then
    raise exception 'storage quota of % bytes per user reached; delete or shorten some tasks first', api.max_bytes_per_user()
      using errcode = 'PT409', detail = 'byte-quota-reached';
  end if;
end
$$;

grant execute on function api.check_byte_quota(bigint) to authenticated;

-- The task limit as before, now under the user-limits lock, and the byte
-- quota with it.
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

  perform api.lock_user_limits();
  select count(*) into task_count from api.tasks where user_id = owner_id;
  if task_count >= api.max_tasks_per_user() then
    raise exception 'task limit of % tasks per user reached; delete some tasks first', api.max_tasks_per_user()
      using errcode = 'PT409', detail = 'task-limit-reached';
  end if;
  perform api.check_byte_quota(api.task_bytes(new.title, new.description));
  return new;
end
$$;

-- An update that makes a task larger counts its growth; one that keeps or
-- shrinks its size is never refused (so a user over a lowered quota can
-- still tidy up).
create or replace function api.tasks_enforce_byte_quota_on_update()
returns trigger
language plpgsql
as $$
declare
  owner_id text := api.current_user_id();
  growth bigint := api.task_bytes(new.title, new.description) - api.task_bytes(old.title, old.description);
begin
  if owner_id is null or growth <= 0 then
    return new;
  end if;
  perform api.lock_user_limits();
  perform api.check_byte_quota(growth);
  return new;
end
$$;

drop trigger if exists tasks_enforce_byte_quota_on_update on api.tasks;
create trigger tasks_enforce_byte_quota_on_update
  before update of title, description on api.tasks
  for each row execute function api.tasks_enforce_byte_quota_on_update();

-- A new idempotency record: the user's own expired records are removed
-- first (they are no longer answered, so they should not count), then the
-- key cap and the byte quota apply.
create or replace function api.idempotency_keys_enforce_limits()
returns trigger
language plpgsql
as $$
declare
  owner_id text := api.current_user_id();
  key_count bigint;
begin
  if owner_id is null then
    return new;
  end if;
  perform api.lock_user_limits();
  delete from api.idempotency_keys k where k.user_id = owner_id and k.expires_at <= now();
  select count(*) into key_count from api.idempotency_keys k where k.user_id = owner_id;
  if key_count >= api.max_idempotency_keys_per_user() then
    raise exception 'limit of % Idempotency-Keys per user in 24 hours reached; retry without one or later', api.max_idempotency_keys_per_user()
      using errcode = 'PT409', detail = 'idempotency-key-limit-reached';
  end if;
  perform api.check_byte_quota(api.idempotency_record_bytes(new.key, new.request_hash, new.response));
  return new;
end
$$;

drop trigger if exists idempotency_keys_enforce_limits on api.idempotency_keys;
create trigger idempotency_keys_enforce_limits
  before insert on api.idempotency_keys
  for each row execute function api.idempotency_keys_enforce_limits();

-- As in 20261127000004, with the idempotency lock keyed on the tuple
-- (purpose, user, key) instead of their concatenation.
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
  if not pg_try_advisory_xact_lock(api.advisory_lock_key('api.idempotency_keys', coalesce(owner_id, ''), p_key)) then
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

-- migrate:down

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

create or replace function api.tasks_enforce_limit()
returns trigger
language plpgsql
as $$
declare
  owner_id text := api.current_user_id();
  task_count bigint;
begin
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

drop trigger if exists idempotency_keys_enforce_limits on api.idempotency_keys;
drop function if exists api.idempotency_keys_enforce_limits();
drop trigger if exists tasks_enforce_byte_quota_on_update on api.tasks;
drop function if exists api.tasks_enforce_byte_quota_on_update();
drop function if exists api.check_byte_quota(bigint);
drop function if exists api.stored_bytes();
drop function if exists api.idempotency_record_bytes(text, text, jsonb);
drop function if exists api.task_bytes(text, text);
drop function if exists api.max_idempotency_keys_per_user();
drop function if exists api.max_bytes_per_user();
drop function if exists api.lock_user_limits();
drop function if exists api.advisory_lock_key(text[]);
