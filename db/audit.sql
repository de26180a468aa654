-- Isolation audit for the Task API.
--
--   psql "$DATABASE_URL" -f db/audit.sql        (exit 0: passed, 3: failed)
--   npm run db:audit                            (the same SQL, the same exit status)
--
-- An allow-list audit: everything the gateway's roles can reach must be on
-- the list in db/audit-allowlist.sql, in the shape written there; anything
-- else fails. "The gateway's roles" are the roles listed there
-- (authenticator, authenticated, anon), every role they can become through
-- memberships, transitively, and PUBLIC. Prints one table, one row per check
-- that passed and one row per offence (object, the role that reaches it, why
-- it is a risk), then raises an error if any check failed.
--
-- Runs in its own transaction and rolls it back: it changes nothing, needs
-- only to read the catalogs (any role, authenticator included, may run it),
-- and its temporary tables vanish with it. Run it on a direct connection,
-- not through a transaction-mode pooler. docs/security.md explains each check.

\set ON_ERROR_STOP on
\set audit_saved_quiet :QUIET
\set QUIET on

begin;
-- Only pg_catalog, and temporary tables last: nothing in the database can
-- shadow a function or operator the audit uses, and names print qualified.
set local search_path = pg_catalog, pg_temp;
-- The catalog queries are small; compiling them (JIT) would take longer than running them.
set local jit = off;

create temporary table allowed_role (role name primary key, may_login boolean not null) on commit drop;
create temporary table allowed_table (relation text primary key, owner_column name not null, policy_roles name[] not null) on commit drop;
create temporary table allowed_grant (relation text not null, role name not null, privileges text not null, columns text) on commit drop;
create temporary table allowed_helper_policy (relation text not null, policy name not null, role name not null) on commit drop;
create temporary table allowed_function (signature text not null, role name not null, security_definer boolean not null) on commit drop;

\ir audit-allowlist.sql

-- The allow-list with names resolved to objects; an entry naming nothing
-- resolves to NULL and allows nothing. Resolved by name in the catalogs, not
-- with to_regclass/to_regprocedure, which need USAGE on the schema: the
-- audit must also run as a role that has none.
create temporary table audit_relation_name on commit drop as
select c.oid, array[n.nspname::text, c.relname::text] as name
  from pg_class c join pg_namespace n on n.oid = c.relnamespace;
create temporary table allowed_grant_object on commit drop as
select r.oid, g.role,
       string_to_array(upper(replace(g.privileges, ' ', '')), ',') as privileges,
       string_to_array(replace(g.columns, ' ', ''), ',')::name[] as columns
  from pg_temp.allowed_grant g
  left join pg_temp.audit_relation_name r on r.name = parse_ident(g.relation);
create temporary table allowed_table_object on commit drop as
select r.oid, t.owner_column, t.policy_roles
  from pg_temp.allowed_table t
  left join pg_temp.audit_relation_name r on r.name = parse_ident(t.relation);
-- What initdb (and CREATE EXTENSION) granted on system objects.
create temporary table audit_initial_privilege on commit drop as
select p.classoid, p.objoid, p.objsubid, i.grantee, i.privilege_type
  from pg_init_privs p
 cross join lateral aclexplode(p.initprivs) i;

-- Every role the gateway can reach: the allow-listed roles and each role they
-- are members of, transitively (whatever the membership's INHERIT/SET
-- options: authenticator is NOINHERIT and still becomes anon), with the
-- shortest path that reaches it; plus PUBLIC (oid 0), which every role is.
create temporary table audit_reachable on commit drop as
with recursive reach (oid, path) as (
  select r.oid, r.rolname::text
    from pg_roles r
    join pg_temp.allowed_role a on a.role = r.rolname
  union
  select m.roleid, reach.path || ' > ' || g.rolname
    from reach
    join pg_auth_members m on m.member = reach.oid
    join pg_roles g on g.oid = m.roleid
)
select distinct on (reach.oid) reach.oid, r.rolname::text as name, reach.path
  from reach
  join pg_roles r on r.oid = reach.oid
 order by reach.oid, length(reach.path), reach.path;
insert into pg_temp.audit_reachable values (0, 'PUBLIC', 'PUBLIC');

-- Roles whose membership would hand over the schema: the database's owner
-- and the owners of schema api and its tables.
create temporary table audit_owner on commit drop as
select d.datdba as oid, format('owns database %I', d.datname) as what
  from pg_database d where d.datname = current_database()
union
select n.nspowner, 'owns schema api' from pg_namespace n where n.nspname = 'api'
union
select c.relowner, 'owns tables in schema api'
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'api' and c.relkind in ('r', 'p');

-- Every relation outside temporary and toast schemas. System schemas
-- (pg_catalog, information_schema) come with privileges for PUBLIC from
-- initdb; for them only privileges beyond those (pg_init_privs, and SELECT
-- for PUBLIC on information_schema's views, which it does not record) count.
create temporary table audit_relation on commit drop as
select c.oid, c.relkind, c.relowner, c.relrowsecurity, c.relforcerowsecurity, c.relispartition,
       n.nspname,
       format('%I.%I', n.nspname, c.relname) as name,
       n.nspname in ('pg_catalog', 'information_schema') as system,
       coalesce((select o.option_value::boolean from pg_options_to_table(c.reloptions) o
                  where o.option_name = 'security_invoker'), false) as security_invoker,
       case c.relkind when 'r' then 'table' when 'p' then 'partitioned table' when 'v' then 'view'
                      when 'm' then 'materialized view' when 'f' then 'foreign table' when 'S' then 'sequence' end
         || case when c.relispartition then ' (a partition)' else '' end as kind,
       c.relacl,
       acldefault(case when c.relkind = 'S' then 's'::"char" else 'r'::"char" end, c.relowner) as default_acl
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
   and n.nspname !~ '^pg_(toast|temp_|toast_temp_)';

-- Each privilege a reachable role or PUBLIC holds on a relation or one of its
-- columns, other than its owner's own.
create temporary table audit_relation_privilege on commit drop as
with privilege as (
  select rel.oid, 0 as attnum, null::name as column_name, a.grantee, a.privilege_type, a.is_grantable
    from pg_temp.audit_relation rel
   cross join lateral aclexplode(coalesce(rel.relacl, rel.default_acl)) a
  union all
  select rel.oid, att.attnum, att.attname, a.grantee, a.privilege_type, a.is_grantable
    from pg_temp.audit_relation rel
    join pg_attribute att on att.attrelid = rel.oid and att.attnum > 0 and att.attacl is not null
   cross join lateral aclexplode(att.attacl) a
   where not att.attisdropped
)
select p.oid, p.column_name, p.grantee, p.privilege_type, p.is_grantable, x.path as reached_as,
       exists (select from pg_temp.allowed_grant_object g
                where g.oid = p.oid
                  and (g.role = x.name or (p.grantee = 0 and upper(g.role) = 'PUBLIC'))
                  and p.privilege_type = any (g.privileges)
                  and (g.columns is null or p.column_name = any (g.columns)))
         as allowed
  from privilege p
  join pg_temp.audit_reachable x on x.oid = p.grantee
  join pg_temp.audit_relation rel on rel.oid = p.oid
 where p.grantee <> rel.relowner
   and not (rel.system
            and ((rel.nspname = 'information_schema' and p.grantee = 0 and p.privilege_type = 'SELECT')
                 or exists (select from pg_temp.audit_initial_privilege i
                             where i.classoid = 'pg_class'::regclass and i.objoid = p.oid and i.objsubid = p.attnum
                               and i.grantee = p.grantee and i.privilege_type = p.privilege_type)));

-- Every function outside temporary schemas, and who may execute it. As for
-- relations, pg_catalog and information_schema functions are executable by
-- PUBLIC from initdb (thousands of them): for those only EXECUTE beyond what
-- initdb granted counts. Every other schema (public, api, extensions' schemas)
-- is held to the allow-list.
create temporary table audit_function on commit drop as
select p.oid, p.prosecdef, p.proowner, p.proconfig,
       format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)) as name,
       n.nspname in ('pg_catalog', 'information_schema') as system,
       p.proacl, acldefault('f'::"char", p.proowner) as default_acl
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
 where n.nspname !~ '^pg_(toast|temp_|toast_temp_)';

-- Functions on the allow-list are matched on their signature as PostgreSQL
-- prints it (schema.name(type, type), types as \df shows them), white space
-- ignored.
create temporary table allowed_function_object on commit drop as
select f.oid, a.role, a.security_definer
  from pg_temp.allowed_function a
  join pg_temp.audit_function f
    on regexp_replace(f.name, '\s', '', 'g') = regexp_replace(a.signature, '\s', '', 'g');

create temporary table audit_function_privilege on commit drop as
select f.oid, a.grantee, x.path as reached_as, a.is_grantable,
       exists (select from pg_temp.allowed_function_object g
                where g.oid = f.oid
                  and (g.role = x.name or (a.grantee = 0 and upper(g.role) = 'PUBLIC'))) as allowed
  from pg_temp.audit_function f
 cross join lateral aclexplode(coalesce(f.proacl, f.default_acl)) a
  join pg_temp.audit_reachable x on x.oid = a.grantee
 where a.grantee <> f.proowner
   and not (f.system
            and (exists (select from pg_temp.audit_initial_privilege i
                          where i.classoid = 'pg_proc'::regclass and i.objoid = f.oid
                            and i.grantee = a.grantee and i.privilege_type = a.privilege_type)
                 -- no initial privileges recorded: initdb left PostgreSQL's default, EXECUTE for PUBLIC
                 or (a.grantee = 0 and not exists (select from pg_temp.audit_initial_privilege i
                                                    where i.classoid = 'pg_proc'::regclass and i.objoid = f.oid))));

create temporary table audit_finding (check_no int not null, object text not null, role text not null, why text not null) on commit drop;

-- 1. Roles. -----------------------------------------------------------------
insert into pg_temp.audit_finding
select 1, format('role %s', a.role), '', 'the login role on the allow-list does not exist: there is nothing to audit from'
  from pg_temp.allowed_role a
 where a.may_login and not exists (select from pg_roles r where r.rolname = a.role);

insert into pg_temp.audit_finding
select 1, format('role %s', r.rolname), x.path, v.why
  from pg_temp.audit_reachable x
  join pg_roles r on r.oid = x.oid
  left join pg_temp.allowed_role a on a.role = r.rolname
 cross join lateral (values
   (r.rolsuper, 'SUPERUSER: every privilege check and row-level security is skipped'),
   (r.rolbypassrls, 'BYPASSRLS: reads and writes every row, whatever the policies'),
   (r.rolcreaterole, 'CREATEROLE: can create roles and grant them, and itself, memberships'),
   (r.rolcreatedb, 'CREATEDB: can create databases it owns'),
   (r.rolreplication, 'REPLICATION: can stream the whole cluster, every row of every user'),
   (r.rolcanlogin and not coalesce(a.may_login, false),
    'LOGIN: a way in that does not go through the gateway; only the login role on the allow-list may log in'),
   (r.rolname ~ '^pg_',
    'predefined role: ' || case r.rolname
      when 'pg_execute_server_program' then 'runs programs on the database server as its OS user (COPY ... PROGRAM)'
      when 'pg_read_server_files' then 'reads any file the database server can read'
      when 'pg_write_server_files' then 'writes any file the database server can write'
      when 'pg_read_all_data' then 'reads every table, view and sequence, whatever the grants'
      when 'pg_write_all_data' then 'writes every table, whatever the grants'
      when 'pg_signal_backend' then 'cancels or terminates other sessions'
      when 'pg_monitor' then 'sees every session''s queries and the server''s statistics'
      when 'pg_read_all_stats' then 'sees every session''s queries and the server''s statistics'
      when 'pg_read_all_settings' then 'reads every server setting'
      else 'privileges beyond the API''s' end),
   (exists (select from pg_temp.audit_owner o where o.oid = r.oid),
    'the owner''s role (' || (select string_agg(o.what, ', ') from pg_temp.audit_owner o where o.oid = r.oid)
      || '): can read every row, change the policies and switch row-level security off'),
   (a.role is null and r.rolname !~ '^pg_' and not exists (select from pg_temp.audit_owner o where o.oid = r.oid),
    'reachable but not on the allow-list: whatever it holds, the gateway holds')
 ) v (bad, why)
 where v.bad;

-- 2. Privileges on relations. -------------------------------------------------
insert into pg_temp.audit_finding
select 2, rel.name || coalesce(' (' || p.column_name || ')', ''), p.reached_as,
       string_agg(p.privilege_type, ', ' order by p.privilege_type) || ' on a ' || rel.kind
         || ' not on the allow-list: '
         || case
              when rel.relkind = 'm' then 'row-level security never applies to a materialized view'
              when rel.relkind = 'f' then 'row-level security cannot apply to a foreign table'
              when rel.relkind = 'v' then 'a view returns whatever its query reads'
              when rel.relkind = 'S' then 'a sequence is shared by all users'
              when rel.relispartition then 'a partition read directly skips its parent''s policies'
              when not (rel.relrowsecurity and rel.relforcerowsecurity) then 'without forced row-level security every row is exposed'
              else 'its rows and policies are outside the reviewed set'
            end
  from pg_temp.audit_relation_privilege p
  join pg_temp.audit_relation rel on rel.oid = p.oid
 where not p.allowed
 group by rel.oid, rel.name, rel.kind, rel.relkind, rel.relispartition, rel.relrowsecurity, rel.relforcerowsecurity,
          p.column_name, p.reached_as;

insert into pg_temp.audit_finding
select 2, rel.name || coalesce(' (' || p.column_name || ')', ''), p.reached_as,
       p.privilege_type || ' WITH GRANT OPTION: can hand the privilege to any other role'
  from pg_temp.audit_relation_privilege p
  join pg_temp.audit_relation rel on rel.oid = p.oid
 where p.is_grantable;

insert into pg_temp.audit_finding
select 2, rel.name, x.path, format('owns this %s: its owner holds every privilege and can switch row-level security off', rel.kind)
  from pg_temp.audit_relation rel
  join pg_temp.audit_reachable x on x.oid = rel.relowner;

-- 3. Row-level security and the shape of what is reachable. -------------------
-- Tables: every table in schema api, every allow-listed table, and every
-- table a gateway role can use.
insert into pg_temp.audit_finding
select 3, rel.name,
       coalesce((select string_agg(distinct p.reached_as, ', ') from pg_temp.audit_relation_privilege p where p.oid = rel.oid), ''),
       case when not rel.relrowsecurity
            then 'row-level security disabled: whoever holds a privilege on it sees every row'
            else 'row-level security not forced: its owner, and functions running as the owner, see every row' end
  from pg_temp.audit_relation rel
 where rel.relkind in ('r', 'p')
   and not (rel.relrowsecurity and rel.relforcerowsecurity)
   and (rel.nspname = 'api'
        or rel.oid in (select t.oid from pg_temp.allowed_table_object t where t.oid is not null)
        or rel.oid in (select p.oid from pg_temp.audit_relation_privilege p));

-- A table a gateway role may use (with allow-listed privileges) must also be
-- an allow-listed user-data table, so its policies can be checked.
insert into pg_temp.audit_finding
select 3, rel.name, string_agg(distinct p.reached_as, ', '),
       'reachable, but not on the allow-list of user-data tables: its policies have no owner column to be checked against'
  from pg_temp.audit_relation rel
  join pg_temp.audit_relation_privilege p on p.oid = rel.oid
 where rel.relkind in ('r', 'p')
   and rel.oid not in (select t.oid from pg_temp.allowed_table_object t where t.oid is not null)
 group by rel.oid, rel.name
having bool_and(p.allowed);

-- Kinds of relation that row-level security cannot protect, even when listed.
insert into pg_temp.audit_finding
select 3, rel.name, string_agg(distinct p.reached_as, ', '),
       'a ' || rel.kind || ' cannot have row-level security: it must not be reachable at all'
  from pg_temp.audit_relation rel
  join pg_temp.audit_relation_privilege p on p.oid = rel.oid
 where rel.relkind in ('m', 'f') and p.allowed
 group by rel.oid, rel.name, rel.kind;

-- Views: security_invoker, over allow-listed tables and views only.
insert into pg_temp.audit_finding
select 3, rel.name, string_agg(distinct p.reached_as, ', '),
       'view without security_invoker: it reads the tables with its owner''s rights, so row-level security is checked against the owner, not the caller'
  from pg_temp.audit_relation rel
  join pg_temp.audit_relation_privilege p on p.oid = rel.oid
 where rel.relkind = 'v' and not rel.security_invoker
 group by rel.oid, rel.name;

insert into pg_temp.audit_finding
select 3, rel.name, string_agg(distinct p.reached_as, ', '),
       format('view reads %s, which is not an allow-listed table or view', used.name)
  from pg_temp.audit_relation rel
  join pg_temp.audit_relation_privilege p on p.oid = rel.oid
  join pg_rewrite rw on rw.ev_class = rel.oid
  join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid and d.refclassid = 'pg_class'::regclass
  join pg_temp.audit_relation used on used.oid = d.refobjid and used.oid <> rel.oid
 where rel.relkind = 'v'
   and used.oid not in (select t.oid from pg_temp.allowed_table_object t where t.oid is not null)
   and used.oid not in (select g.oid from pg_temp.allowed_grant_object g where g.oid is not null)
 group by rel.oid, rel.name, used.name;

-- 4. Policies. ------------------------------------------------------------------
-- Permissive policies are OR-ed together, so each one that applies to a
-- gateway role must be exactly "owner column = (select api.current_user_id())";
-- restrictive ones are AND-ed on top and may only narrow what those allow.
insert into pg_temp.audit_finding
with policy as (
  select format('policy %I on %I.%I', pol.polname, n.nspname, c.relname) as name,
         pol.polname, pol.polrelid, pol.polpermissive,
         pg_get_expr(pol.polqual, pol.polrelid) as using_expr,
         pg_get_expr(pol.polwithcheck, pol.polrelid) as check_expr,
         t.owner_column, t.policy_roles, polrole.oid as role_oid,
         case when polrole.oid = 0 then 'PUBLIC' else pg_get_userbyid(polrole.oid)::text end as role_name
    from pg_policy pol
    join pg_class c on c.oid = pol.polrelid
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_temp.allowed_table_object t on t.oid = c.oid
   cross join lateral unnest(pol.polroles) as polrole (oid)
   where n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
), judged as (
  select policy.*,
         exists (select from pg_temp.audit_reachable x where x.oid = policy.role_oid) as reachable,
         case when policy.owner_column is not null
              then format('(%I = ( SELECT api.current_user_id() AS current_user_id))', policy.owner_column) end as expected
    from policy
)
select 4, j.name, j.role_name, v.why
  from judged j
 cross join lateral (values
   (j.polpermissive and j.role_oid = 0,
    'permissive policy TO PUBLIC: applies to every role, present and future'),
   (j.polpermissive and j.reachable and j.role_oid <> 0 and j.owner_column is null,
    'permissive policy for a gateway role on a table that is not on the allow-list of user-data tables'),
   (j.polpermissive and j.reachable and j.role_oid <> 0 and j.owner_column is not null
      and not (j.role_name = any (j.policy_roles)),
    'permissive policy for a role the allow-list does not name for this table'),
   (j.polpermissive and j.reachable and j.owner_column is not null
      and j.using_expr is distinct from j.expected and j.using_expr is not null,
    format('USING %s does not compare %s with (select api.current_user_id()): it lets this role see or change other users'' rows',
           j.using_expr, quote_ident(j.owner_column))),
   (j.polpermissive and j.reachable and j.owner_column is not null
      and j.check_expr is distinct from j.expected and j.check_expr is not null,
    format('WITH CHECK %s does not compare %s with (select api.current_user_id()): it lets this role write rows for other users',
           j.check_expr, quote_ident(j.owner_column))),
   (j.polpermissive and not j.reachable
      and not exists (select from pg_temp.allowed_helper_policy h
                       where parse_ident(h.relation) = (select r.name from pg_temp.audit_relation_name r where r.oid = j.polrelid)
                         and h.policy = j.polname and h.role = j.role_name),
    'permissive policy for a role that is not a gateway role, not on the allow-list of helper policies')
 ) v (bad, why)
 where v.bad;

-- Every policy above hinges on api.current_user_id(): it must still read the
-- sub claim of request.jwt.claims, as the caller. (Function bodies are
-- otherwise reviewed in migrations/, not here.)
insert into pg_temp.audit_finding
select 4, f.name, '',
       'the function every policy compares owners with does not read the sub claim of request.jwt.claims as the caller: every policy now keys on something else'
  from pg_temp.audit_function f
  join pg_proc p on p.oid = f.oid
 where f.name = 'api.current_user_id()'
   and (p.prosecdef or p.prosrc !~ 'request\.jwt\.claims' or p.prosrc !~ '->>\s*''sub''');

-- 5. Functions. -----------------------------------------------------------------
insert into pg_temp.audit_finding
select 5, f.name, p.reached_as,
       'EXECUTE not on the allow-list: '
         || case when f.prosecdef then 'SECURITY DEFINER, it runs with its owner''s rights, past the caller''s grants and policies'
                 when f.system then 'a system function granted beyond what initdb grants'
                 else 'code the gateway''s roles can run that nobody reviewed' end
  from pg_temp.audit_function_privilege p
  join pg_temp.audit_function f on f.oid = p.oid
 where not p.allowed;

insert into pg_temp.audit_finding
select 5, f.name, p.reached_as, 'EXECUTE WITH GRANT OPTION: can hand it to any other role'
  from pg_temp.audit_function_privilege p
  join pg_temp.audit_function f on f.oid = p.oid
 where p.is_grantable;

insert into pg_temp.audit_finding
select 5, f.name, x.path, 'owned by a gateway role: it can change what the function does, and whose rights it runs with'
  from pg_temp.audit_function f
  join pg_temp.audit_reachable x on x.oid = f.proowner
 where not f.system;

-- The shape of every function a gateway role can execute.
insert into pg_temp.audit_finding
select 5, s.name, s.grantees, v.why
  from (
    select f.name, f.prosecdef, owner.rolname as owner_name, owner.rolsuper, owner.rolbypassrls,
           (select string_agg(distinct p.reached_as, ', ') from pg_temp.audit_function_privilege p
             where p.oid = f.oid) as grantees,
           exists (select from pg_temp.audit_function_privilege p where p.oid = f.oid and p.grantee = 0) as by_public,
           (select bool_or(g.security_definer) from pg_temp.allowed_function_object g
             where g.oid = f.oid) as listed_definer,
           (select string_to_array(replace(substr(c, length('search_path=') + 1), ' ', ''), ',')
              from unnest(f.proconfig) c where c like 'search_path=%') as search_path
      from pg_temp.audit_function f
      join pg_roles owner on owner.oid = f.proowner
     where not f.system
       and exists (select from pg_temp.audit_function_privilege p where p.oid = f.oid)
  ) s
 cross join lateral (values
   (s.listed_definer is not null and s.listed_definer <> s.prosecdef,
    case when s.prosecdef then 'SECURITY DEFINER, but the allow-list says SECURITY INVOKER: it runs with its owner''s rights'
         else 'SECURITY INVOKER, but the allow-list says SECURITY DEFINER' end),
   (s.prosecdef and s.search_path is null,
    'SECURITY DEFINER without a pinned search_path: a caller''s objects can stand in for the ones it names'),
   (s.prosecdef and s.search_path[cardinality(s.search_path)] is distinct from 'pg_temp' and s.search_path is not null,
    'SECURITY DEFINER whose search_path does not end in pg_temp: a caller''s temporary tables are searched first'),
   (s.prosecdef and s.rolsuper,
    format('SECURITY DEFINER owned by %s, a superuser: runs with every privilege and no row-level security', s.owner_name)),
   (s.prosecdef and s.rolbypassrls and not s.rolsuper,
    format('SECURITY DEFINER owned by %s, which has BYPASSRLS: runs past every policy', s.owner_name)),
   (s.prosecdef and s.by_public,
    'SECURITY DEFINER executable by PUBLIC: every role, present and future, runs it with its owner''s rights')
 ) v (bad, why)
 where v.bad;

-- 6. Schemas and the database. ---------------------------------------------------
insert into pg_temp.audit_finding
select 6, format('schema %I', n.nspname), x.path,
       'CREATE on a schema: can add tables, views and functions, and shadow names in search_path'
  from pg_namespace n
 cross join lateral aclexplode(coalesce(n.nspacl, acldefault('n'::"char", n.nspowner))) a
  join pg_temp.audit_reachable x on x.oid = a.grantee
 where a.privilege_type = 'CREATE' and a.grantee <> n.nspowner
   and n.nspname !~ '^pg_(toast|temp_|toast_temp_)';

insert into pg_temp.audit_finding
select 6, format('schema %I', n.nspname), x.path, 'owns the schema: can create, replace and drop anything in it'
  from pg_namespace n
  join pg_temp.audit_reachable x on x.oid = n.nspowner
 where n.nspname !~ '^pg_(toast|temp_|toast_temp_)';

insert into pg_temp.audit_finding
select 6, format('database %I', d.datname), x.path, 'CREATE on the database: can create schemas, and objects in them'
  from pg_database d
 cross join lateral aclexplode(coalesce(d.datacl, acldefault('d'::"char", d.datdba))) a
  join pg_temp.audit_reachable x on x.oid = a.grantee
 where d.datname = current_database() and a.privilege_type = 'CREATE' and a.grantee <> d.datdba;

insert into pg_temp.audit_finding
select 6, format('database %I', d.datname), x.path, 'owns the database: can create schemas and change its settings'
  from pg_database d
  join pg_temp.audit_reachable x on x.oid = d.datdba
 where d.datname = current_database();

-- 7. Default privileges. -----------------------------------------------------------
insert into pg_temp.audit_finding
select 7,
       format('default privileges of %s%s on %s', pg_get_userbyid(d.defaclrole),
              coalesce(' in schema ' || quote_ident(n.nspname), ''),
              case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions'
                                   when 'n' then 'schemas' else d.defaclobjtype::text end),
       x.path,
       string_agg(a.privilege_type, ', ' order by a.privilege_type)
         || ': every such object this role creates from now on is granted without review'
  from pg_default_acl d
  left join pg_namespace n on n.oid = d.defaclnamespace
 cross join lateral aclexplode(d.defaclacl) a
  join pg_temp.audit_reachable x on x.oid = a.grantee
 where d.defaclobjtype <> 'T' and a.grantee <> d.defaclrole
 group by d.oid, d.defaclrole, n.nspname, d.defaclobjtype, x.path;

-- PostgreSQL's built-in default makes every new function executable by
-- PUBLIC; the migrations revoke that for the owner of schema api.
insert into pg_temp.audit_finding
select 7, format('default privileges of %s on functions', pg_get_userbyid(s.nspowner)), 'PUBLIC',
       'the owner of schema api has no default privileges revoking EXECUTE from PUBLIC: each function it creates is executable by every role'
  from pg_namespace s
 where s.nspname = 'api'
   and not exists (select from pg_default_acl d
                    where d.defaclrole = s.nspowner and d.defaclnamespace = 0 and d.defaclobjtype = 'f');

-- The report: every check, with a row per offence, or one "pass" row saying
-- what it verified.
select c.no as "#",
       c.name as "check",
       case when f.object is null then 'pass' else 'FAIL' end as result,
       coalesce(f.object, '') as object,
       coalesce(f.role, '') as role,
       coalesce(f.why, c.verified) as why
  from (values
    (1, 'roles', 'the gateway''s roles, and every role they can become, have no SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB, REPLICATION or predefined role, are not the owner, and only the login role logs in'),
    (2, 'relation privileges', 'every privilege of a gateway role or PUBLIC on a table, view, sequence or column, in any schema, is on the allow-list'),
    (3, 'row-level security', 'every reachable table (and every table in api) has row-level security enabled and forced; no reachable view without security_invoker, materialized view or foreign table'),
    (4, 'policies', 'every permissive policy for a gateway role compares the owner column with (select api.current_user_id()); no policy TO PUBLIC; helper policies are listed'),
    (5, 'functions', 'every function a gateway role or PUBLIC can execute outside pg_catalog is on the allow-list; SECURITY DEFINER ones pin search_path and have a plain owner'),
    (6, 'schemas and database', 'no gateway role can create in any schema or in the database, or owns either'),
    (7, 'default privileges', 'no default privileges hand future objects to a gateway role or PUBLIC')
  ) c (no, name, verified)
  left join pg_temp.audit_finding f on f.check_no = c.no
 order by c.no, f.object, f.role, f.why;

-- Verdict: (src/db/audit.ts runs the file up to this line, then the rest)
do $$
declare
  problems text;
  problem_count int;
begin
  select count(*), string_agg(format('[%s] %s (%s): %s', f.check_no, f.object, nullif(f.role, ''), f.why),
                              E'\n' order by f.check_no, f.object, f.role, f.why)
    into problem_count, problems
    from pg_temp.audit_finding f;
  if problem_count > 0 then
    raise exception E'RLS audit failed: % problem(s)\n%', problem_count, problems
      using hint = 'Each line names the object, the gateway role that reaches it and why it is a risk. '
                   'Fix the schema, or, when the object is meant to be reachable, add it to db/audit-allowlist.sql.';
  end if;
  raise notice 'RLS audit passed: everything the gateway''s roles can reach is on the allow-list, in its expected shape';
end
$$;
rollback;

\set QUIET :audit_saved_quiet
