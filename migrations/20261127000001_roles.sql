-- migrate:up

-- PostgREST's role model. Roles are cluster-wide, so each is created only if
-- absent: the same migration runs on a fresh local cluster, on a cluster where
-- another database already created them, and on Neon, where the migration role
-- (neondb_owner) has CREATEROLE but is not a superuser.
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;

  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;

  -- The gateway logs in as authenticator. NOINHERIT: it holds no privileges of
  -- its own and gets those of anon or authenticated only after SET ROLE.
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;

  -- Owns the one SECURITY DEFINER function that may look past row-level
  -- security to tell "another user's task" (403) from "no such task" (404).
  -- Nobody logs in as it and no reachable role is a member of it.
  if not exists (select from pg_roles where rolname = 'task_probe') then
    create role task_probe nologin noinherit;
  end if;
end
$$;

-- Re-asserted on every run so a role that pre-existed with other attributes
-- is brought back to least privilege.
alter role anon nologin nocreatedb nocreaterole;
alter role authenticated nologin nocreatedb nocreaterole;
alter role authenticator login noinherit nocreatedb nocreaterole;
alter role task_probe nologin nocreatedb nocreaterole;

-- Only a superuser may name SUPERUSER in ALTER ROLE, and only a superuser
-- (PostgreSQL 15) or a BYPASSRLS role (16+) may name BYPASSRLS, even to turn
-- it off; Neon's neondb_owner is neither. So these are touched only when a
-- role actually has them: a no-op on a clean cluster, and a loud failure,
-- never a silent one, if a non-superuser finds a role that bypasses RLS.
do $$
declare
  role_name text;
begin
  foreach role_name in array array['anon', 'authenticated', 'authenticator', 'task_probe'] loop
    if (select rolsuper from pg_roles where rolname = role_name) then
      execute format('alter role %I nosuperuser', role_name);
    end if;
    if (select rolbypassrls from pg_roles where rolname = role_name) then
      execute format('alter role %I nobypassrls', role_name);
    end if;
  end loop;
end
$$;

-- Timestamps reach the gateway as text in UTC; transaction-local settings
-- (set per request) are the fallback for poolers that reset sessions.
alter role authenticator set timezone = 'UTC';

grant anon to authenticator;
grant authenticated to authenticator;

-- A non-superuser migration role (Neon's neondb_owner) needs membership in
-- task_probe to hand it ownership of a function.
grant task_probe to current_user;

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
