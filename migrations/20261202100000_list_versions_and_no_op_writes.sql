-- migrate:up

-- What real frontends need from the list and from writes:
--   * a write that changes nothing changes nothing (version, updated_at);
--   * a per-user list version, bumped by every write that changes one of the
--     user's tasks, so GET /tasks can answer If-None-Match with 304 by reading
--     one row instead of the whole list;
--   * indexes for the list's status filter and its title order.

-- 1. No-op writes. Same trigger as before, except that an UPDATE leaving
-- title, description and completed as they were keeps version and updated_at:
-- a repeated {"completed": true} must not invalidate other clients' ETags.
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
    if (new.title, new.description, new.completed)
       is not distinct from (old.title, old.description, old.completed) then
      new.version := old.version;
      new.updated_at := old.updated_at;
    else
      new.version := old.version + 1;
      -- Never earlier than the previous write, even if the clock steps back.
      new.updated_at := greatest(now_ms, old.updated_at);
    end if;
  end if;

  return new;
end
$$;

-- 2. List versions. Owns the one function that writes them (the trigger
-- below). Nobody logs in as it and no role the gateway reaches is a member.
do $$
begin
  if not exists (select from pg_roles where rolname = 'task_list_versioner') then
    create role task_list_versioner nologin noinherit;
  end if;
end
$$;
alter role task_list_versioner nologin nocreatedb nocreaterole;
-- As in the roles migration: SUPERUSER and BYPASSRLS only when actually set.
do $$
begin
  if (select rolsuper from pg_roles where rolname = 'task_list_versioner') then
    alter role task_list_versioner nosuperuser;
  end if;
  if (select rolbypassrls from pg_roles where rolname = 'task_list_versioner') then
    alter role task_list_versioner nobypassrls;
  end if;
end
$$;
grant task_list_versioner to current_user;

-- One global sequence: a list version is never reused, by the same user or
-- another, and taking a value locks nothing.
create sequence if not exists api.task_list_version_seq;

-- One row per user who has ever written a task: the version of their list.
-- A user without a row has version 0.
create table if not exists api.task_list_versions (
  user_id text   primary key,
  version bigint not null,

  constraint task_list_versions_user_id_present check (user_id <> '')
);

comment on table api.task_list_versions is
  'The version of each user''s task list, bumped by every write that changes one of their tasks. Row-level security: policies/task_list_versions.sql.';

alter table api.task_list_versions enable row level security;
alter table api.task_list_versions force row level security;

-- Users read their own version; only task_list_versioner writes.
grant select on api.task_list_versions to authenticated;
grant usage on schema api to task_list_versioner;
grant select, insert, update on api.task_list_versions to task_list_versioner;
grant usage on sequence api.task_list_version_seq to task_list_versioner;

-- Bumps the list version of every user whose tasks the statement changed.
-- Statement-level with transition tables, so a bulk write costs one upsert
-- per user, not per row. SECURITY DEFINER as task_list_versioner: the bump
-- must happen whoever writes (a user, or the owner maintaining data without
-- claims), and users themselves may not write versions. The upsert takes the
-- user's version row lock until commit, so one user's writes commit one after
-- another; a version is therefore never older than a committed write.
create or replace function api.tasks_bump_list_versions()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' then
    insert into api.task_list_versions as v (user_id, version)
    select changed.user_id, nextval('api.task_list_version_seq')
      from (select distinct user_id from new_rows) changed
    on conflict (user_id) do update set version = excluded.version;
  elsif tg_op = 'DELETE' then
    insert into api.task_list_versions as v (user_id, version)
    select changed.user_id, nextval('api.task_list_version_seq')
      from (select distinct user_id from old_rows) changed
    on conflict (user_id) do update set version = excluded.version;
  else
    -- Only rows whose version moved: a no-op write leaves the list as it was.
    insert into api.task_list_versions as v (user_id, version)
    select changed.user_id, nextval('api.task_list_version_seq')
      from (select distinct n.user_id
              from new_rows n
              join old_rows o on o.id = n.id
             where n.version <> o.version) changed
    on conflict (user_id) do update set version = excluded.version;
  end if;
  return null;
end
$$;

grant create on schema api to task_list_versioner;
alter function api.tasks_bump_list_versions() owner to task_list_versioner;
revoke create on schema api from task_list_versioner;
revoke execute on function api.tasks_bump_list_versions() from public;

-- Transition tables allow one event per trigger.
drop trigger if exists tasks_bump_list_versions_insert on api.tasks;
create trigger tasks_bump_list_versions_insert
  after insert on api.tasks
  referencing new table as new_rows
  for each statement execute function api.tasks_bump_list_versions();

drop trigger if exists tasks_bump_list_versions_update on api.tasks;
create trigger tasks_bump_list_versions_update
  after update on api.tasks
  referencing old table as old_rows new table as new_rows
  for each statement execute function api.tasks_bump_list_versions();

drop trigger if exists tasks_bump_list_versions_delete on api.tasks;
create trigger tasks_bump_list_versions_delete
  after delete on api.tasks
  referencing old table as old_rows
  for each statement execute function api.tasks_bump_list_versions();

-- The caller's list version; 0 before their first write. Deliberately not
-- PARALLEL SAFE (the default is unsafe): the list statement that calls it
-- then never runs in parallel, so its UNION ALL returns the version row first.
create or replace function api.task_list_version()
returns bigint
language sql
stable
as $$
  select coalesce(
    (select version from api.task_list_versions where user_id = (select api.current_user_id())),
    0
  )
$$;

grant execute on function api.task_list_version() to authenticated;

-- 3. List indexes. ?status=pending|completed newest first, and ?sort=title
-- (case-insensitive A→Z, then newest first): each a range scan, no sort.
create index if not exists tasks_user_id_completed_created_at_id_idx
  on api.tasks (user_id, completed, created_at desc, id desc);

-- The title order's key as a column rather than an index on lower(title):
-- under row-level security a condition can bound an index scan only if its
-- functions are leakproof, and lower() is not (text comparison is), so a
-- page of titles after a cursor could not start at its place in the index.
alter table api.tasks
  add column if not exists title_sort_key text generated always as (lower(title)) stored;

comment on column api.tasks.title_sort_key is
  'lower(title): the order of ?sort=title, kept as a column so it can bound index scans under row-level security.';

create index if not exists tasks_user_id_title_sort_key_created_at_id_idx
  on api.tasks (user_id, title_sort_key, created_at desc, id desc);

-- 4. Pages. One page of the caller's tasks in the list's order, starting at
-- a position (inclusive) or at the top. The user is known only at run time
-- (through row-level security), so the planner estimates for the average
-- user; for a user with many tasks it would then pick a bitmap scan and sort
-- all their remaining tasks for every page. Planned here with bitmap scans
-- and sorts off, each page is a range scan of one index in the list's order
-- that reads the page and stops.
--   p_sort       'created' (newest first) or 'title' (case-insensitive A→Z, then newest first)
--   p_completed  null: every task; otherwise only tasks with that value
--   p_after_*    the first task's sort key (title only for 'title'); null on the first page
create or replace function api.list_tasks_page(
  p_sort text,
  p_completed boolean,
  p_limit integer,
  p_after_created_at timestamptz default null,
  p_after_id uuid default null,
  p_after_title text default null
)
returns setof api.tasks
language plpgsql
stable
set search_path = pg_catalog, pg_temp
set enable_bitmapscan = off
set enable_sort = off
as $$
declare
  status_filter text := case when p_completed is null then '' else ' and completed = $1' end;
begin
  if p_sort not in ('created', 'title') or p_limit is null or p_limit < 0 then
    raise exception 'list_tasks_page: sort must be created or title and limit at least 0' using errcode = '22023';
  end if;

  if p_after_id is null then
    return query execute
      'select * from api.tasks where true' || status_filter ||
      case p_sort when 'title' then ' order by title_sort_key, created_at desc, id desc'
                  else ' order by created_at desc, id desc' end ||
      ' limit $2'
      using p_completed, p_limit;
  elsif p_sort = 'created' then
    return query execute
      'select * from api.tasks where (created_at, id) <= ($3, $4)' || status_filter ||
      ' order by created_at desc, id desc limit $2'
      using p_completed, p_limit, p_after_created_at, p_after_id;
  else
    -- The rest of the position's title (ties, from the position on), then
    -- the titles after it: two range scans of the title index.
    return query execute
      'select * from ('
      || '(select * from api.tasks where title_sort_key = lower($5) and (created_at, id) <= ($3, $4)' || status_filter
      || ' order by created_at desc, id desc limit $2)'
      || ' union all '
      || '(select * from api.tasks where title_sort_key > lower($5)' || status_filter
      || ' order by title_sort_key, created_at desc, id desc limit $2)'
      || ') page limit $2'
      using p_completed, p_limit, p_after_created_at, p_after_id, p_after_title;
  end if;
end
$$;

grant execute on function api.list_tasks_page(text, boolean, integer, timestamptz, uuid, text) to authenticated;

-- migrate:down

drop function if exists api.list_tasks_page(text, boolean, integer, timestamptz, uuid, text);

drop index if exists api.tasks_user_id_title_sort_key_created_at_id_idx;
alter table api.tasks drop column if exists title_sort_key;
drop index if exists api.tasks_user_id_completed_created_at_id_idx;

drop function if exists api.task_list_version();

drop trigger if exists tasks_bump_list_versions_delete on api.tasks;
drop trigger if exists tasks_bump_list_versions_update on api.tasks;
drop trigger if exists tasks_bump_list_versions_insert on api.tasks;
drop function if exists api.tasks_bump_list_versions();
drop table if exists api.task_list_versions;
drop sequence if exists api.task_list_version_seq;
revoke usage on schema api from task_list_versioner;

do $$
begin
  drop role if exists task_list_versioner;
exception when dependent_objects_still_exist then
  raise notice 'role task_list_versioner kept: objects in another database depend on it';
end
$$;

-- Every write bumps the version again.
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
