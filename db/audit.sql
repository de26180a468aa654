-- Row-level security audit for the Task API.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f db/audit.sql
--
-- Prints every table in schema api with its RLS state and policies, and every
-- role the gateway's login role can reach with its dangerous attributes. The
-- last statement raises an error (psql exits non-zero) if any table lacks
-- forced RLS, or a role reachable from authenticator is a superuser, can
-- bypass RLS, or owns a table in the schema. npm run db:audit runs this file.

-- 1. Tables: is row-level security enabled and forced?
select c.relname                        as "table",
       c.relrowsecurity                 as rls_enabled,
       c.relforcerowsecurity            as rls_forced,
       pg_get_userbyid(c.relowner)      as owner
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'api'
   and c.relkind in ('r', 'p')
 order by c.relname;

-- 2. Policies, as PostgreSQL will apply them.
select tablename                        as "table",
       policyname                       as policy,
       cmd                              as command,
       array_to_string(roles, ', ')     as roles,
       qual                             as "using",
       with_check                       as "with check"
  from pg_policies
 where schemaname = 'api'
 order by tablename, policyname;

-- 3. Roles the gateway can become (authenticator and every role it is a
--    member of), with the attributes that would defeat row-level security.
select r.rolname                        as role,
       r.rolcanlogin                    as can_login,
       r.rolsuper                       as superuser,
       r.rolbypassrls                   as bypass_rls,
       coalesce((select string_agg(c.relname, ', ' order by c.relname)
                   from pg_class c
                   join pg_namespace n on n.oid = c.relnamespace
                  where n.nspname = 'api'
                    and c.relkind in ('r', 'p')
                    and c.relowner = r.oid), '')
                                        as owns_tables
  from pg_roles r
 where pg_has_role('authenticator', r.oid, 'MEMBER')
 order by r.rolname;

-- 4. Roles that bypass RLS anywhere in the cluster (superusers always do):
--    never to be used to serve requests.
select rolname as role, rolsuper as superuser, rolbypassrls as bypass_rls
  from pg_roles
 where (rolsuper or rolbypassrls)
   and rolname !~ '^pg_'
 order by rolname;

-- 5. Verdict.
do $$
declare
  problems text[] := array[]::text[];
  finding record;
begin
  if to_regrole('authenticator') is null then
    problems := problems || 'role authenticator does not exist'::text;
  end if;

  for finding in
    select c.relname, c.relrowsecurity, c.relforcerowsecurity
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'api'
       and c.relkind in ('r', 'p')
       and not (c.relrowsecurity and c.relforcerowsecurity)
  loop
    problems := problems || format('table api.%s: row-level security %s',
      finding.relname,
      case when finding.relrowsecurity then 'enabled but not forced' else 'disabled' end);
  end loop;

  if to_regrole('authenticator') is not null then
    for finding in
      select r.rolname, r.rolsuper, r.rolbypassrls
        from pg_roles r
       where pg_has_role('authenticator', r.oid, 'MEMBER')
         and (r.rolsuper or r.rolbypassrls)
    loop
      problems := problems || format('role %s, reachable from authenticator, %s',
        finding.rolname,
        case when finding.rolsuper then 'is a superuser' else 'can bypass RLS' end);
    end loop;

    for finding in
      select r.rolname, c.relname
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_roles r on r.oid = c.relowner
       where n.nspname = 'api'
         and c.relkind in ('r', 'p')
         and pg_has_role('authenticator', r.oid, 'MEMBER')
    loop
      problems := problems || format('role %s, reachable from authenticator, owns table api.%s',
        finding.rolname, finding.relname);
    end loop;
  end if;

  if cardinality(problems) > 0 then
    raise exception 'RLS audit failed: %', array_to_string(problems, '; ');
  end if;
  raise notice 'RLS audit passed: every table in schema api has forced row-level security and no role reachable from authenticator can bypass it';
end
$$;
