-- Finishes a Neon deployment after the migrations: gives the gateway's login
-- role (authenticator) its password, checks that the roles are what the
-- gateway relies on, and runs the RLS audit. docs/deploy-neon.md has the
-- whole sequence; this file is plain psql, nothing else needed.
--
--   psql "$DATABASE_OWNER_URL" -X -v ON_ERROR_STOP=1 \
--        -v authenticator_password="$AUTHENTICATOR_PASSWORD" \
--        -f scripts/neon-setup.sql
--
-- DATABASE_OWNER_URL is the owner's (neondb_owner's) URL on the DIRECT host,
-- not the -pooler one. Leave out -v authenticator_password to only check
-- (npm run db:migrate with AUTHENTICATOR_PASSWORD set has already set it).
-- Run it as the role that ran the migrations: on PostgreSQL 16 and later only
-- a role with ADMIN OPTION on authenticator (its creator) may set its password.
--
-- The password travels to the server as plain text in an ALTER ROLE
-- statement, over TLS (PostgreSQL stores only its SCRAM verifier). Not psql's
-- \password: it sends an already hashed password, which Neon does not support
-- for roles made with SQL.

\set ON_ERROR_STOP on
\set QUIET on

-- 1. Where are we? Refuse the pooled host: migrations and role changes belong
--    on the direct connection.
select current_database() as database,
       format('database %s, role %s (%s), PostgreSQL %s', current_database(), current_user,
              case when (select rolsuper from pg_roles where rolname = current_user)
                   then 'superuser' else 'not a superuser' end,
              current_setting('server_version')) as summary,
       :'HOST' ~ '-pooler' as on_pooler
\gset setup_
\echo :setup_summary

\if :setup_on_pooler
  do $$ begin
    raise exception 'connected through the pooled (-pooler) host'
      using hint = 'Run this script and npm run db:migrate over the direct host: remove "-pooler" from the host name.';
  end $$;
\endif

-- 2. The migrations must have run first: they create the roles and schema.
select to_regrole('authenticator') is not null and to_regclass('api.tasks') is not null as migrated
\gset setup_
\if :setup_migrated
\else
  do $$ begin
    raise exception 'role authenticator or table api.tasks is missing'
      using hint = 'Run npm run db:migrate with DATABASE_OWNER_URL (direct host) first.';
  end $$;
\endif

-- 3. The password, when one was given.
\if :{?authenticator_password}
  alter role authenticator with password :'authenticator_password';
  \echo 'authenticator password set'
\else
  \echo 'no -v authenticator_password given: authenticator''s password left unchanged'
\endif

-- 4. The roles the gateway and PostgREST use, as the migrations left them.
\unset QUIET
select r.rolname                                   as role,
       r.rolcanlogin                               as can_login,
       r.rolinherit                                as inherit,
       r.rolsuper                                  as superuser,
       r.rolbypassrls                              as bypass_rls,
       r.rolcreaterole or r.rolcreatedb            as creates_roles_or_databases,
       coalesce((select string_agg(distinct g.rolname, ', ' order by g.rolname)
                   from pg_auth_members m
                   join pg_roles g on g.oid = m.roleid
                  where m.member = r.oid), '')     as member_of
  from pg_roles r
 where r.rolname in ('authenticator', 'authenticated', 'anon', 'anonymous', 'task_probe', 'idempotency_janitor', 'task_list_versioner')
 order by r.rolname;
\set QUIET on

do $$
declare
  problems text[] := array[]::text[];
  r record;
begin
  for r in
    select rolname, rolcanlogin, rolinherit, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb
      from pg_roles
     where rolname in ('authenticator', 'authenticated', 'anon', 'anonymous', 'task_probe', 'idempotency_janitor', 'task_list_versioner')
  loop
    if r.rolsuper or r.rolbypassrls or r.rolcreaterole or r.rolcreatedb then
      problems := problems || format('%s is SUPERUSER, BYPASSRLS, CREATEROLE or CREATEDB', r.rolname);
    end if;
    -- The login role must hold nothing until SET ROLE; a NOLOGIN role the
    -- Data API made (INHERIT by default) inherits nothing that matters.
    if r.rolinherit and r.rolname = 'authenticator' then
      problems := problems || 'authenticator must be NOINHERIT'::text;
    end if;
    if r.rolcanlogin <> (r.rolname = 'authenticator') then
      problems := problems || format('%s: only authenticator may log in', r.rolname);
    end if;
  end loop;

  if not (pg_has_role('authenticator', 'anon', 'MEMBER') and pg_has_role('authenticator', 'authenticated', 'MEMBER')) then
    problems := problems || 'authenticator must be a member of anon and authenticated'::text;
  end if;
  if pg_has_role('authenticator', 'task_probe', 'MEMBER') or pg_has_role('authenticator', 'idempotency_janitor', 'MEMBER')
     or pg_has_role('authenticator', 'task_list_versioner', 'MEMBER') or pg_has_role('authenticator', current_user, 'MEMBER') then
    problems := problems || 'authenticator must not reach task_probe, idempotency_janitor, task_list_versioner or the owner'::text;
  end if;

  if cardinality(problems) > 0 then
    raise exception 'Neon setup check failed: %', array_to_string(problems, '; ');
  end if;
  raise notice 'roles checked: authenticator logs in, reaches anon and authenticated only, and no API role is privileged';
end
$$;

-- 5. The RLS audit (the same file npm run db:audit runs); it fails the script
--    if anything the gateway's roles can reach is not on db/audit-allowlist.sql.
\unset QUIET
\ir ../db/audit.sql
\set QUIET on

-- 6. What the gateway connects with: authenticator on the POOLED host.
select format('  DATABASE_URL=postgresql://authenticator:<password>@%s/%s?sslmode=verify-full',
              case when :'HOST' ~ '^ep-[^.]+\.'
                   then regexp_replace(:'HOST', '^(ep-[^.]+)', '\1-pooler')
                   else :'HOST' end,
              current_database()) as gateway_url
\gset setup_
\echo
\echo 'Next: start the gateway (docs/deploy-neon.md) with'
\echo :setup_gateway_url
\echo '  and JWT_SECRET or JWKS_URL'
