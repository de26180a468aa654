-- migrate:up

-- PostgREST's role model. Roles are cluster-wide: on a new Neon project the
-- migration role (neondb_owner: CREATEROLE, not a superuser) creates them;
-- elsewhere some may exist already, made by another role (Neon's Data API
-- makes `authenticated`; a role made in Neon's Console has BYPASSRLS and is a
-- member of neon_superuser). An existing role is adopted only when it is safe
-- for the API, and left as it is; an unsafe one stops the migration here,
-- before anything is changed, with what is wrong and what to do.
--
-- Who may change a role: a superuser; on PostgreSQL 15 any CREATEROLE role
-- (for a non-superuser role); on 16 and later only a holder of ADMIN OPTION on
-- it, which CREATE ROLE gives its creator.
do $$
declare
  owner_name constant name := current_user;
  owner_role constant pg_roles := (select r from pg_roles r where r.rolname = current_user);
  database_owner constant oid := (select datdba from pg_database where datname = current_database());
  pre16 constant boolean := current_setting('server_version_num')::int < 160000;
  role_name text;
  r pg_roles;
  reached record;
  problems text[] := '{}';
  advice text[] := '{}';
  fault text;
  -- On 16+ switching to a role needs the SET option of a membership, not any membership.
  can_switch constant text := case when pre16 then 'MEMBER' else 'SET' end;
begin
  foreach role_name in array array['anon', 'authenticated', 'authenticator', 'task_probe'] loop
    select * into r from pg_roles where rolname = role_name;
    continue when not found;

    -- Attributes that hand out rights no API role may have.
    fault := concat_ws(', ',
      case when r.rolsuper then 'is a superuser' end,
      case when r.rolbypassrls then 'has BYPASSRLS' end,
      case when r.rolcreaterole then 'has CREATEROLE' end,
      case when r.rolcreatedb then 'has CREATEDB' end,
      case when r.rolreplication then 'has REPLICATION' end,
      case when r.rolcanlogin and role_name <> 'authenticator' then 'can log in' end);

    -- Memberships, followed all the way up: predefined roles (pg_read_all_data,
    -- pg_execute_server_program, ...), neon_superuser, any role with those
    -- attributes, the owner, the database's owner, and the roles that own the
    -- API's privileged functions. The login role may reach the API roles only.
    for reached in
      with recursive up(oid) as (
        select m.roleid from pg_auth_members m where m.member = r.oid
        union
        select m.roleid from pg_auth_members m join up on m.member = up.oid
      )
      select g.rolname from up join pg_roles g on g.oid = up.oid
       where g.oid < 16384 or g.rolname ~ '^pg_' or g.rolname = 'neon_superuser'
          or g.rolsuper or g.rolbypassrls or g.rolcreaterole or g.rolcreatedb or g.rolreplication
          or g.rolname = owner_name or g.oid = database_owner
          or g.rolname in ('task_probe', 'idempotency_janitor')
          or (g.rolname = 'authenticator' and role_name <> 'authenticator')
          or (role_name = 'authenticator' and g.rolname not in ('anon', 'authenticated', 'anonymous'))
       order by g.rolname
    loop
      fault := concat_ws(', ', nullif(fault, ''), format('is a member of %s', reached.rolname));
    end loop;

    if fault <> '' then
      problems := problems || format('role %s already exists and %s', role_name, fault);
      advice := advice || format(
        'drop it (DROP ROLE %1$s, as its creator) so the migration creates it afresh, or have its creator remove what is listed (ALTER ROLE %1$s NOBYPASSRLS ..., REVOKE ... FROM %1$s)',
        role_name);
    end if;
  end loop;

  -- What the migration will change on roles it finds: the login role's
  -- LOGIN NOINHERIT and time zone, and memberships not yet granted.
  declare
    may_admin boolean;
    needs text;
  begin
    foreach role_name in array array['anon', 'authenticated', 'authenticator', 'task_probe'] loop
      select * into r from pg_roles where rolname = role_name;
      continue when not found;
      may_admin := owner_role.rolsuper
                   or (pre16 and owner_role.rolcreaterole and not r.rolsuper)
                   or pg_has_role(owner_name, r.oid, 'USAGE WITH ADMIN OPTION');
      continue when may_admin;
      needs := case role_name
        when 'authenticator' then
          case when not r.rolcanlogin or r.rolinherit then 'make it LOGIN NOINHERIT' end
        when 'task_probe' then
          case when not pg_has_role(owner_name, r.oid, can_switch) then format('make %s a member of it', owner_name) end
        else
          case when to_regrole('authenticator') is null or not pg_has_role('authenticator', r.oid, can_switch)
               then 'make authenticator a member of it' end
      end;
      if needs is not null then
        problems := problems || format('%s may not alter role %s (created by another role) to %s', owner_name, role_name, needs);
        advice := advice || format('have the creator of %1$s run GRANT %1$s TO %2$s WITH ADMIN OPTION', role_name, owner_name);
      end if;
    end loop;
  end;

  -- One paragraph, all in the message: dbmate prints only that.
  if cardinality(problems) > 0 then
    raise exception '%', format(
      'The roles migration stopped before changing anything: %s. A role the gateway logs in as or switches to '
      'must not bypass row-level security or reach a privileged role, since every request would run with its rights. '
      'To fix: %s; then run the migration again. A role made in Neon''s Console is always a member of neon_superuser '
      '(with BYPASSRLS): let the migration create the API roles with SQL instead.',
      array_to_string(problems, '; '), array_to_string(advice, '; '));
  end if;
end
$$;

do $$
declare
  owner_name constant name := current_user;
  owner_role constant pg_roles := (select r from pg_roles r where r.rolname = current_user);
  pre16 constant boolean := current_setting('server_version_num')::int < 160000;
  can_switch constant text := case when pre16 then 'MEMBER' else 'SET' end;
  may_admin_authenticator boolean;
begin
  -- What a request without a token runs as (PostgREST's db-anon-role).
  if to_regrole('anon') is null then
    create role anon nologin noinherit;
  end if;

  -- What a request with a verified token runs as.
  if to_regrole('authenticated') is null then
    create role authenticated nologin noinherit;
  end if;

  -- The gateway logs in as authenticator. NOINHERIT: it holds no privileges of
  -- its own and gets those of anon or authenticated only after SET ROLE.
  if to_regrole('authenticator') is null then
    create role authenticator login noinherit;
  end if;

  -- Owns the one SECURITY DEFINER function that may look past row-level
  -- security to tell "another user's task" (403) from "no such task" (404).
  -- Nobody logs in as it and no reachable role is a member of it.
  if to_regrole('task_probe') is null then
    create role task_probe nologin noinherit;
  end if;

  -- Only what differs is altered: an adopted role the owner may not alter is
  -- left exactly as it is (the check above made sure nothing needs changing).
  if (select not rolcanlogin or rolinherit from pg_roles where rolname = 'authenticator') then
    alter role authenticator login noinherit;
  end if;

  -- Timestamps reach the gateway as text in UTC. Transaction-local settings
  -- (set per request) are what the gateway relies on; this role default
  -- covers other clients, so it is set only where the owner may.
  may_admin_authenticator := owner_role.rolsuper
    or (pre16 and owner_role.rolcreaterole and not (select rolsuper from pg_roles where rolname = 'authenticator'))
    or pg_has_role(owner_name, 'authenticator', 'USAGE WITH ADMIN OPTION');
  if may_admin_authenticator then
    alter role authenticator set timezone = 'UTC';
  else
    raise notice 'role authenticator was made by another role: its default time zone is left as it is (the gateway sets UTC per request)';
  end if;

  if not pg_has_role('authenticator', 'anon', can_switch) then
    grant anon to authenticator;
  end if;
  if not pg_has_role('authenticator', 'authenticated', can_switch) then
    grant authenticated to authenticator;
  end if;

  -- A non-superuser migration role (Neon's neondb_owner) needs membership in
  -- task_probe to hand it ownership of a function.
  if not pg_has_role(owner_name, 'task_probe', can_switch) then
    grant task_probe to current_user;
  end if;
end
$$;

-- migrate:down

-- Roles are shared by every database in the cluster. A database that still
-- holds objects depending on any of them (another copy of this schema) also
-- logs in as authenticator and switches to anon or authenticated, which leave
-- no trace in pg_shdepend; so the four roles are kept, or dropped, together.
do $$
begin
  if exists (
    select from pg_shdepend d
      join pg_roles r on r.oid = d.refobjid
     where d.refclassid = 'pg_authid'::regclass
       and r.rolname in ('task_probe', 'authenticator', 'authenticated', 'anon')
  ) then
    raise notice 'roles anon, authenticated, authenticator and task_probe kept: another database still uses them';
    return;
  end if;
  drop role if exists task_probe, authenticator, authenticated, anon;
end
$$;
