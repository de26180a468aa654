-- migrate:up

-- Neon's Data API (PostgREST) runs a request without a token as the role
-- `anonymous` (PostgREST's db-anon-role; this project's own is `anon`). It is
-- made here, NOLOGIN NOINHERIT with no privileges at all, so the schema and
-- the Data API agree on it and the audit can check it; if the Data API made it
-- first it is adopted as it is, when safe. Nothing in schema api is granted to
-- it and no policy names it: a request without a token reaches no task,
-- through the gateway (401) or through the Data API (permission denied).
-- authenticator is not made a member: the gateway never runs as it.
do $$
declare
  r pg_roles;
  fault text;
  reached record;
begin
  select * into r from pg_roles where rolname = 'anonymous';
  if not found then
    create role anonymous nologin noinherit;
    return;
  end if;

  -- The same rules as the roles migration: no privileged attribute, and no
  -- membership reaching a predefined role, neon_superuser, a privileged role,
  -- the owner, or a role that can read tasks.
  fault := concat_ws(', ',
    case when r.rolsuper then 'is a superuser' end,
    case when r.rolbypassrls then 'has BYPASSRLS' end,
    case when r.rolcreaterole then 'has CREATEROLE' end,
    case when r.rolcreatedb then 'has CREATEDB' end,
    case when r.rolreplication then 'has REPLICATION' end,
    case when r.rolcanlogin then 'can log in' end);
  for reached in
    with recursive up(oid) as (
      select m.roleid from pg_auth_members m where m.member = r.oid
      union
      select m.roleid from pg_auth_members m join up on m.member = up.oid
    )
    select g.rolname from up join pg_roles g on g.oid = up.oid
     where g.oid < 16384 or g.rolname ~ '^pg_' or g.rolname = 'neon_superuser'
        or g.rolsuper or g.rolbypassrls or g.rolcreaterole or g.rolcreatedb or g.rolreplication
        or g.rolname = current_user
        or g.oid = (select datdba from pg_database where datname = current_database())
        or g.rolname in ('authenticated', 'authenticator', 'task_probe', 'idempotency_janitor')
     order by g.rolname
  loop
    fault := concat_ws(', ', nullif(fault, ''), format('is a member of %s', reached.rolname));
  end loop;

  if fault <> '' then
    raise exception '%', format(
      'The anonymous-role migration stopped before changing anything: role anonymous already exists and %s. '
      'Neon''s Data API runs every request without a token as anonymous, so it must hold nothing. To fix: have its '
      'creator remove what is listed (ALTER ROLE anonymous NOLOGIN ..., REVOKE ... FROM anonymous), or drop it so '
      'the migration creates it afresh; then run the migration again.', fault);
  end if;
end
$$;

-- migrate:down

-- Kept while another database depends on it (as the roles migration does).
do $$
begin
  if exists (
    select from pg_shdepend d join pg_roles r on r.oid = d.refobjid
     where d.refclassid = 'pg_authid'::regclass and r.rolname = 'anonymous'
  ) then
    raise notice 'role anonymous kept: another database still uses it';
    return;
  end if;
  drop role if exists anonymous;
end
$$;
