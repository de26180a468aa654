-- migrate:up

-- The write operations of the API, one function each, returning the task row
-- ready to serialize. All run as the caller (SECURITY INVOKER), so row-level
-- security decides which rows they can touch. Errors follow PostgREST's
-- conventions, which it turns into the same HTTP statuses as the gateway:
--   42501  the task exists but belongs to another user   -> 403
--   PT404  no such task                                   -> 404
--   PT412  If-Match names none of the task's versions     -> 412
--   22023  a change set that is empty or names an unknown field -> 422 (gateway)
-- p_if_match: NULL when the request had no If-Match (or If-Match: *),
-- otherwise the versions the client accepts.

-- Does a task with this id exist at all, whoever owns it? The only function
-- that looks past row-level security; it runs as task_probe, which can read
-- nothing but ids, and answers nothing but yes or no.
create or replace function api.task_exists(p_id uuid)
returns boolean
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select exists (select 1 from api.tasks where id = p_id)
$$;

-- A non-superuser migration role can hand a function only to a role that may
-- create in its schema; that right is needed for the hand-over alone.
grant create on schema api to task_probe;
alter function api.task_exists(uuid) owner to task_probe;
revoke create on schema api from task_probe;
revoke execute on function api.task_exists(uuid) from public;
grant execute on function api.task_exists(uuid) to authenticated;

-- Raises the error that explains why a statement on task p_id matched no row
-- the caller can see: wrong version (PT412), another user's (42501), or
-- missing (PT404).
create or replace function api.raise_task_unmatched(p_id uuid, p_if_match bigint[])
returns void
language plpgsql
stable
as $$
begin
  if p_if_match is not null
     and exists (select 1 from api.tasks where id = p_id) then
    raise exception 'task % has changed', p_id
      using errcode = 'PT412',
            hint = 'Fetch the task again for its current ETag.';
  elsif api.task_exists(p_id) then
    raise exception 'task % belongs to another user', p_id
      using errcode = '42501';
  else
    raise exception 'task % not found', p_id
      using errcode = 'PT404';
  end if;
end
$$;

create or replace function api.get_task(p_id uuid)
returns api.tasks
language plpgsql
stable
as $$
declare
  task api.tasks;
begin
  select * into task from api.tasks where id = p_id;
  if not found then
    perform api.raise_task_unmatched(p_id, null);
  end if;
  return task;
end
$$;

create or replace function api.create_task(
  p_title text,
  p_description text default null,
  p_completed boolean default false
)
returns api.tasks
language sql
volatile
as $$
  insert into api.tasks (title, description, completed)
  values (p_title, p_description, coalesce(p_completed, false))
  returning *
$$;

-- PUT: every user-editable field is replaced.
create or replace function api.replace_task(
  p_id uuid,
  p_title text,
  p_description text,
  p_completed boolean,
  p_if_match bigint[] default null
)
returns api.tasks
language plpgsql
volatile
as $$
declare
  task api.tasks;
begin
  update api.tasks
     set title = p_title,
         description = p_description,
         completed = p_completed
   where id = p_id
     and (p_if_match is null or version = any (p_if_match))
  returning * into task;

  if not found then
    perform api.raise_task_unmatched(p_id, p_if_match);
  end if;
  return task;
end
$$;

-- PATCH: p_changes is a JSON object holding any non-empty subset of title,
-- description and completed; fields it leaves out keep their value.
create or replace function api.update_task(
  p_id uuid,
  p_changes jsonb,
  p_if_match bigint[] default null
)
returns api.tasks
language plpgsql
volatile
as $$
declare
  task api.tasks;
  unknown_field text;
begin
  if jsonb_typeof(p_changes) is distinct from 'object' or p_changes = '{}' then
    raise exception 'a task update needs at least one of title, description, completed'
      using errcode = '22023';
  end if;

  select key into unknown_field
    from jsonb_object_keys(p_changes) as key
   where key not in ('title', 'description', 'completed')
   limit 1;
  if found then
    raise exception 'unknown task field: %', unknown_field
      using errcode = '22023';
  end if;

  -- The same types the API accepts: no "5" for 5, no "true" for true.
  if p_changes ? 'title' and jsonb_typeof(p_changes -> 'title') <> 'string' then
    raise exception 'title must be a string' using errcode = '22023';
  end if;
  if p_changes ? 'description' and jsonb_typeof(p_changes -> 'description') not in ('string', 'null') then
    raise exception 'description must be a string or null' using errcode = '22023';
  end if;
  if p_changes ? 'completed' and jsonb_typeof(p_changes -> 'completed') <> 'boolean' then
    raise exception 'completed must be true or false' using errcode = '22023';
  end if;

  update api.tasks
     set title = case when p_changes ? 'title'
                      then p_changes ->> 'title' else title end,
         description = case when p_changes ? 'description'
                            then p_changes ->> 'description' else description end,
         completed = case when p_changes ? 'completed'
                          then (p_changes -> 'completed')::boolean else completed end
   where id = p_id
     and (p_if_match is null or version = any (p_if_match))
  returning * into task;

  if not found then
    perform api.raise_task_unmatched(p_id, p_if_match);
  end if;
  return task;
end
$$;

-- One atomic UPDATE: concurrent toggles of a task queue on its row lock and
-- each flips the value the previous one committed.
create or replace function api.toggle_task(p_id uuid, p_if_match bigint[] default null)
returns api.tasks
language plpgsql
volatile
as $$
declare
  task api.tasks;
begin
  update api.tasks
     set completed = not completed
   where id = p_id
     and (p_if_match is null or version = any (p_if_match))
  returning * into task;

  if not found then
    perform api.raise_task_unmatched(p_id, p_if_match);
  end if;
  return task;
end
$$;

-- The explicit set of PATCH /tasks/{id}/complete: a one-field update_task,
-- so it is idempotent and shares update_task's checks (a NULL is 22023).
create or replace function api.set_task_completed(
  p_id uuid,
  p_completed boolean,
  p_if_match bigint[] default null
)
returns api.tasks
language sql
volatile
as $$
  select * from api.update_task(p_id, jsonb_build_object('completed', p_completed), p_if_match)
$$;

-- Returns the deleted task.
create or replace function api.delete_task(p_id uuid, p_if_match bigint[] default null)
returns api.tasks
language plpgsql
volatile
as $$
declare
  task api.tasks;
begin
  delete from api.tasks
   where id = p_id
     and (p_if_match is null or version = any (p_if_match))
  returning * into task;

  if not found then
    perform api.raise_task_unmatched(p_id, p_if_match);
  end if;
  return task;
end
$$;

grant execute on function
  api.raise_task_unmatched(uuid, bigint[]),
  api.get_task(uuid),
  api.create_task(text, text, boolean),
  api.replace_task(uuid, text, text, boolean, bigint[]),
  api.update_task(uuid, jsonb, bigint[]),
  api.toggle_task(uuid, bigint[]),
  api.set_task_completed(uuid, boolean, bigint[]),
  api.delete_task(uuid, bigint[])
to authenticated;

-- migrate:down

drop function if exists api.delete_task(uuid, bigint[]);
drop function if exists api.set_task_completed(uuid, boolean, bigint[]);
drop function if exists api.toggle_task(uuid, bigint[]);
drop function if exists api.update_task(uuid, jsonb, bigint[]);
drop function if exists api.replace_task(uuid, text, text, boolean, bigint[]);
drop function if exists api.create_task(text, text, boolean);
drop function if exists api.get_task(uuid);
drop function if exists api.raise_task_unmatched(uuid, bigint[]);
drop function if exists api.task_exists(uuid);
