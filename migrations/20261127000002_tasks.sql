-- migrate:up

-- Everything the API serves lives in its own schema, the one PostgREST (or
-- Neon's Data API) would expose with db-schemas = api.
create schema if not exists api;

-- Functions this owner creates from now on are not executable by PUBLIC:
-- every EXECUTE is an explicit grant. (Per-schema default privileges cannot
-- take away what the global defaults give PUBLIC, so this one is global.)
alter default privileges revoke execute on functions from public;

grant usage on schema api to authenticated;

-- The caller's user id: the `sub` of the verified JWT, as PostgREST publishes
-- it in request.jwt.claims. NULL, never an error and never a stale user, when
-- no claims are set: a pooled connection where an earlier transaction set the
-- claims transaction-locally reads the setting back as '' rather than NULL.
create or replace function api.current_user_id()
returns text
language sql
stable
parallel safe
as $$
  select nullif(
    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub',
    ''
  )
$$;

grant execute on function api.current_user_id() to authenticated;

-- The white space JavaScript's String.prototype.trim() removes, so a title is
-- trimmed the same way whether it arrives through the gateway or not.
create or replace function api.trim_white_space(value text)
returns text
language sql
immutable
strict
parallel safe
as $$
  select btrim(
    value,
    E' \t\n\u000B\f\r\u00A0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006'
    || E'\u2007\u2008\u2009\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF'
  )
$$;

grant execute on function api.trim_white_space(text) to authenticated;

create table if not exists api.tasks (
  id          uuid        primary key default gen_random_uuid(),
  user_id     text        not null default api.current_user_id(),
  title       text        not null,
  description text,
  completed   boolean     not null default false,
  -- Bumped by every write; the gateway's ETag is derived from it.
  version     bigint      not null default 1,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),

  constraint tasks_user_id_present check (user_id <> ''),
  constraint tasks_title_trimmed check (title = api.trim_white_space(title)),
  constraint tasks_title_length check (char_length(title) between 1 and 255),
  constraint tasks_description_length check (char_length(description) <= 10000),
  constraint tasks_version_positive check (version > 0)
);

comment on table api.tasks is
  'One row per task; each belongs to the user whose JWT sub is in user_id. Row-level security: policies/tasks.sql.';

-- "This user's tasks, newest first" is a range scan of this index, no sort.
create index if not exists tasks_user_id_created_at_id_idx
  on api.tasks (user_id, created_at desc, id desc);

-- Server-owned columns are set here, whatever a writer sends: the title is
-- trimmed, timestamps come from the clock (millisecond precision, as the API
-- reports them), the version counts writes, and id, owner and creation time
-- never change.
create or replace function api.tasks_before_write()
returns trigger
language plpgsql
as $$
declare
  now_ms timestamptz := date_trunc('milliseconds', clock_timestamp());
begin
  new.title := api.trim_white_space(new.title);

  if tg_op = 'INSERT' then
    new.version := 1;
    new.created_at := now_ms;
    new.updated_at := now_ms;
  else
    new.id := old.id;
    new.user_id := old.user_id;
    new.created_at := old.created_at;
    new.version := old.version + 1;
    -- Never earlier than the previous write, even if the clock steps back.
    new.updated_at := greatest(now_ms, old.updated_at);
  end if;

  return new;
end
$$;

drop trigger if exists tasks_before_write on api.tasks;
create trigger tasks_before_write
  before insert or update on api.tasks
  for each row execute function api.tasks_before_write();

-- Row-level security is switched on here so the table is never readable
-- without it, even before policies/tasks.sql adds the policies.
alter table api.tasks enable row level security;
alter table api.tasks force row level security;

-- authenticated may write only the user-editable columns; id, user_id,
-- version and timestamps come from defaults and the trigger.
grant select, delete on api.tasks to authenticated;
grant insert (title, description, completed) on api.tasks to authenticated;
grant update (title, description, completed) on api.tasks to authenticated;

-- The probe role sees ids only (see api.task_exists).
grant usage on schema api to task_probe;
grant select (id) on api.tasks to task_probe;

-- migrate:down

drop schema if exists api cascade;
alter default privileges grant execute on functions to public;
