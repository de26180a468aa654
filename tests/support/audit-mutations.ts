// Weakenings of a correctly migrated database that db/audit.sql must catch.
// tests/db-audit-mutations.test.ts applies each one in a transaction that is
// rolled back, runs the audit inside it, and expects it to fail with the
// offence described here. A new kind of object in the schema (or in
// db/audit-allowlist.sql) gets its mutation here.
//
// `{suffix}` in a statement is replaced by a random suffix (roles are
// cluster-wide; a rolled-back CREATE ROLE still must not collide).

export interface AuditMutation {
  /** The weakening, as a reviewer would describe it. */
  name: string;
  sql: string[];
  /**
   * Statements a non-superuser owner (Neon's neondb_owner) cannot run; in
   * that scenario they run as the superuser, and the audit as the owner.
   */
  asSuperuser?: boolean;
  /** The offence the audit must report: the object exactly, the role and reason by pattern. */
  expect: { object: string | RegExp; role?: RegExp; why?: RegExp };
}

const PREDEFINED_ROLES = [
  'pg_execute_server_program',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_read_all_data',
  'pg_write_all_data',
  'pg_signal_backend',
  'pg_monitor',
];

export const AUDIT_MUTATIONS: AuditMutation[] = [
  // Relations.
  {
    name: 'a view over api.tasks granted to authenticated',
    sql: ['create view api.all_tasks as select * from api.tasks', 'grant select on api.all_tasks to authenticated'],
    expect: { object: 'api.all_tasks', role: /^authenticated$/, why: /view/ },
  },
  {
    name: 'a security_invoker view over api.tasks granted to authenticated, not on the allow-list',
    sql: [
      'create view api.my_tasks with (security_invoker) as select * from api.tasks',
      'grant select on api.my_tasks to authenticated',
    ],
    expect: { object: 'api.my_tasks', role: /^authenticated$/, why: /not on the allow-list/ },
  },
  {
    name: 'a materialized view over api.tasks granted to authenticated',
    sql: ['create materialized view public.task_copy as select * from api.tasks', 'grant select on public.task_copy to authenticated'],
    expect: { object: 'public.task_copy', role: /^authenticated$/, why: /materialized view/ },
  },
  {
    name: 'a table in schema public without RLS, granted to authenticated',
    sql: ['create table public.notes (id int primary key, body text)', 'grant select, insert on public.notes to authenticated'],
    expect: { object: 'public.notes', role: /^authenticated$/, why: /INSERT, SELECT/ },
  },
  {
    name: 'an unlogged table in schema public readable by PUBLIC',
    sql: ['create unlogged table public.cache (key text, value text)', 'grant select on public.cache to public'],
    expect: { object: 'public.cache', role: /^PUBLIC$/ },
  },
  {
    name: 'UPDATE of api.tasks.user_id granted to authenticated (a column grant)',
    sql: ['grant update (user_id) on api.tasks to authenticated'],
    expect: { object: 'api.tasks (user_id)', role: /^authenticated$/, why: /UPDATE/ },
  },
  {
    name: 'TRUNCATE on api.tasks granted to authenticated (ignores row-level security)',
    sql: ['grant truncate on api.tasks to authenticated'],
    expect: { object: 'api.tasks', role: /^authenticated$/, why: /TRUNCATE/ },
  },
  {
    name: 'SELECT on api.tasks granted WITH GRANT OPTION',
    sql: ['grant select on api.tasks to authenticated with grant option'],
    expect: { object: 'api.tasks', role: /^authenticated$/, why: /GRANT OPTION/ },
  },
  {
    name: 'api.tasks readable by anon',
    sql: ['grant usage on schema api to anon', 'grant select on api.tasks to anon'],
    expect: { object: 'api.tasks', role: /^anon$/, why: /SELECT/ },
  },
  {
    name: 'SELECT on api.tasks granted to a role that authenticated is a member of',
    sql: [
      'create role audit_reader_{suffix} nologin',
      'grant select on api.tasks to audit_reader_{suffix}',
      'grant audit_reader_{suffix} to authenticated',
    ],
    expect: { object: 'api.tasks', role: /^authenticated > audit_reader_\w+$/, why: /SELECT/ },
  },
  {
    name: 'a sequence granted to authenticated',
    sql: ['create sequence public.ticket_numbers', 'grant usage, select on sequence public.ticket_numbers to authenticated'],
    expect: { object: 'public.ticket_numbers', role: /^authenticated$/, why: /sequence/ },
  },
  {
    name: 'a foreign table granted to authenticated',
    asSuperuser: true,
    sql: [
      'create foreign data wrapper audit_fdw',
      'create server audit_server foreign data wrapper audit_fdw',
      'create foreign table public.remote_tasks (id uuid, user_id text) server audit_server',
      'grant select on public.remote_tasks to authenticated',
    ],
    expect: { object: 'public.remote_tasks', role: /^authenticated$/, why: /foreign table/ },
  },
  {
    name: 'a partition (without RLS) granted to authenticated',
    sql: [
      'create table api.archive (user_id text not null, title text) partition by list (user_id)',
      'alter table api.archive enable row level security',
      'alter table api.archive force row level security',
      "create table api.archive_alice partition of api.archive for values in ('alice')",
      'grant select on api.archive_alice to authenticated',
    ],
    expect: { object: 'api.archive_alice', role: /^authenticated$/, why: /partition/ },
  },
  {
    name: 'api.tasks owned by authenticated',
    asSuperuser: true,
    sql: ['alter table api.tasks owner to authenticated'],
    expect: { object: 'api.tasks', role: /authenticated/, why: /owns/ },
  },
  {
    name: 'row-level security disabled on api.tasks',
    sql: ['alter table api.tasks disable row level security'],
    expect: { object: 'api.tasks', why: /row-level security disabled/ },
  },
  {
    name: 'row-level security not forced on api.idempotency_keys',
    sql: ['alter table api.idempotency_keys no force row level security'],
    expect: { object: 'api.idempotency_keys', why: /not forced/ },
  },
  {
    name: 'a table in schema api without RLS, granted to nobody',
    sql: ['create table api.notes (id int primary key)'],
    expect: { object: 'api.notes', why: /row-level security disabled/ },
  },

  // Policies.
  {
    name: 'an extra permissive policy USING (true) on api.tasks for authenticated',
    sql: ['create policy tasks_everything on api.tasks for select to authenticated using (true)'],
    expect: { object: 'policy tasks_everything on api.tasks', role: /^authenticated$/, why: /USING true/ },
  },
  {
    name: 'a policy TO PUBLIC USING (true) on api.tasks',
    sql: ['create policy tasks_public on api.tasks for select using (true)'],
    expect: { object: 'policy tasks_public on api.tasks', role: /^PUBLIC$/, why: /TO PUBLIC/ },
  },
  {
    name: 'a policy comparing user_id with a claim other than sub',
    sql: [
      `create policy tasks_by_email on api.tasks for select to authenticated
         using (user_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'email'))`,
    ],
    expect: { object: 'policy tasks_by_email on api.tasks', role: /^authenticated$/, why: /does not compare user_id/ },
  },
  {
    name: 'an INSERT policy whose WITH CHECK lets a user write rows for others',
    sql: ['create policy tasks_insert_any on api.tasks for insert to authenticated with check (true)'],
    expect: { object: 'policy tasks_insert_any on api.tasks', role: /^authenticated$/, why: /WITH CHECK/ },
  },
  {
    name: 'an owner-shaped policy for anon, which the allow-list does not name for api.tasks',
    sql: ['create policy tasks_anon on api.tasks for select to anon using (user_id = (select api.current_user_id()))'],
    expect: { object: 'policy tasks_anon on api.tasks', role: /^anon$/, why: /does not name/ },
  },
  {
    name: 'a policy for authenticated on a table that is not on the allow-list',
    sql: [
      'create table api.notes (id int primary key, user_id text)',
      'alter table api.notes enable row level security',
      'alter table api.notes force row level security',
      'create policy notes_all on api.notes for select to authenticated using (true)',
    ],
    expect: { object: 'policy notes_all on api.notes', role: /^authenticated$/, why: /not on the allow-list of user-data tables/ },
  },
  {
    name: 'an unlisted policy for the helper role task_probe',
    sql: ['create policy tasks_probe_update on api.tasks for update to task_probe using (true)'],
    expect: { object: 'policy tasks_probe_update on api.tasks', role: /^task_probe$/ },
  },

  {
    name: 'api.current_user_id() reading the email claim instead of sub',
    sql: [
      `create or replace function api.current_user_id() returns text language sql stable
         as $$ select nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email' $$`,
    ],
    expect: { object: 'api.current_user_id()', why: /sub claim/ },
  },

  // Functions.
  {
    name: 'an extra SECURITY DEFINER function in api returning every task, executable by authenticated',
    sql: [
      `create function api.all_tasks() returns setof api.tasks language sql stable security definer
         set search_path = pg_catalog, pg_temp as 'select * from api.tasks'`,
      'grant execute on function api.all_tasks() to authenticated',
    ],
    expect: { object: 'api.all_tasks()', role: /^authenticated$/, why: /SECURITY DEFINER/ },
  },
  {
    name: 'a SECURITY DEFINER function in schema public executable by authenticated',
    sql: [
      `create function public.peek(p_id uuid) returns setof api.tasks language sql stable security definer
         set search_path = pg_catalog, pg_temp as 'select * from api.tasks where id = p_id'`,
      'grant execute on function public.peek(uuid) to authenticated',
    ],
    expect: { object: 'public.peek(uuid)', role: /^authenticated$/, why: /SECURITY DEFINER/ },
  },
  {
    name: 'a SECURITY DEFINER function without a pinned search_path',
    sql: ['alter function api.task_exists(uuid) reset search_path'],
    expect: { object: 'api.task_exists(uuid)', role: /^authenticated$/, why: /without a pinned search_path/ },
  },
  {
    name: 'a SECURITY DEFINER function whose search_path does not end in pg_temp',
    sql: ['alter function api.task_exists(uuid) set search_path = pg_catalog'],
    expect: { object: 'api.task_exists(uuid)', why: /does not end in pg_temp/ },
  },
  {
    name: 'a helper role (owner of a SECURITY DEFINER function) given BYPASSRLS',
    asSuperuser: true,
    sql: ['alter role task_probe bypassrls'],
    expect: { object: 'api.task_exists(uuid)', why: /BYPASSRLS/ },
  },
  {
    name: 'a SECURITY DEFINER function owned by a superuser',
    asSuperuser: true,
    sql: ['alter function api.purge_expired_idempotency_keys() owner to session_user'],
    expect: { object: 'api.purge_expired_idempotency_keys()', why: /a superuser/ },
  },
  {
    name: 'a SECURITY INVOKER function on the allow-list made SECURITY DEFINER',
    sql: ['alter function api.get_task(uuid) security definer set search_path = pg_catalog, pg_temp'],
    expect: { object: 'api.get_task(uuid)', why: /allow-list says SECURITY INVOKER/ },
  },
  {
    name: 'EXECUTE on an api function granted to PUBLIC',
    sql: ['grant execute on function api.get_task(uuid) to public'],
    expect: { object: 'api.get_task(uuid)', role: /^PUBLIC$/ },
  },
  {
    name: 'EXECUTE on a SECURITY DEFINER function granted to PUBLIC',
    sql: ['grant execute on function api.task_exists(uuid) to public'],
    expect: { object: 'api.task_exists(uuid)', why: /executable by PUBLIC/ },
  },
  {
    name: 'EXECUTE on an allow-listed function granted to a role the allow-list does not name (anon)',
    sql: ['grant execute on function api.create_task(text, text, boolean) to anon'],
    expect: { object: 'api.create_task(text, text, boolean)', role: /^anon$/ },
  },
  {
    name: 'a function in schema public left executable by PUBLIC (the built-in default)',
    sql: ["create function public.helper() returns int language sql as 'select 1'", 'grant execute on function public.helper() to public'],
    expect: { object: 'public.helper()', role: /^PUBLIC$/ },
  },
  {
    name: 'EXECUTE on pg_read_file granted to authenticated',
    asSuperuser: true,
    sql: ['grant execute on function pg_catalog.pg_read_file(text) to authenticated'],
    expect: { object: 'pg_catalog.pg_read_file(text)', role: /^authenticated$/, why: /system function/ },
  },

  // Roles.
  ...PREDEFINED_ROLES.map(
    (role): AuditMutation => ({
      name: `membership of authenticated in ${role}`,
      asSuperuser: true,
      sql: [`grant ${role} to authenticated`],
      expect: { object: `role ${role}`, role: new RegExp(`^authenticated > ${role}$`), why: /predefined role/ },
    }),
  ),
  {
    name: 'membership in pg_read_all_data through an intermediate role',
    asSuperuser: true,
    sql: [
      'create role audit_helper_{suffix} nologin',
      'grant pg_read_all_data to audit_helper_{suffix}',
      'grant audit_helper_{suffix} to authenticated',
    ],
    expect: { object: 'role pg_read_all_data', role: /^authenticated > audit_helper_\w+ > pg_read_all_data$/ },
  },
  {
    name: 'authenticated made a member of the helper role task_probe',
    sql: ['grant task_probe to authenticated'],
    expect: { object: 'role task_probe', role: /^authenticated > task_probe$/, why: /not on the allow-list/ },
  },
  {
    name: "anon made a member of the role that owns a table in api",
    asSuperuser: true,
    // (The migration role itself cannot be used here: on PostgreSQL 16+ a
    // Neon-like owner holds ADMIN OPTION on anon, and the grant would be circular.)
    sql: [
      'create role audit_owner_{suffix} nologin',
      'alter table api.idempotency_keys owner to audit_owner_{suffix}',
      'grant audit_owner_{suffix} to anon',
    ],
    expect: { object: /^role audit_owner_\w+$/, role: /^anon > audit_owner_\w+$/, why: /the owner's role \(owns tables in schema api\)/ },
  },
  {
    name: 'CREATEROLE on authenticated',
    sql: ['alter role authenticated createrole'],
    expect: { object: 'role authenticated', role: /^authenticated$/, why: /CREATEROLE/ },
  },
  {
    name: 'CREATEDB on anon',
    sql: ['alter role anon createdb'],
    expect: { object: 'role anon', why: /CREATEDB/ },
  },
  {
    name: 'LOGIN on authenticated',
    sql: ['alter role authenticated login'],
    expect: { object: 'role authenticated', why: /LOGIN/ },
  },
  {
    name: 'BYPASSRLS on authenticated',
    asSuperuser: true,
    sql: ['alter role authenticated bypassrls'],
    expect: { object: 'role authenticated', why: /BYPASSRLS/ },
  },
  {
    name: 'SUPERUSER on authenticator',
    asSuperuser: true,
    sql: ['alter role authenticator superuser'],
    expect: { object: 'role authenticator', why: /SUPERUSER/ },
  },
  {
    name: 'REPLICATION on authenticator',
    asSuperuser: true,
    sql: ['alter role authenticator replication'],
    expect: { object: 'role authenticator', why: /REPLICATION/ },
  },

  // Schemas, the database, default privileges.
  {
    name: 'CREATE on schema public for PUBLIC (the default before PostgreSQL 15)',
    sql: ['grant create on schema public to public'],
    expect: { object: 'schema public', role: /^PUBLIC$/, why: /CREATE/ },
  },
  {
    name: 'CREATE on schema api for authenticated',
    sql: ['grant create on schema api to authenticated'],
    expect: { object: 'schema api', role: /^authenticated$/ },
  },
  {
    name: 'CREATE on the database for authenticated',
    sql: [`do $$ begin execute format('grant create on database %I to authenticated', current_database()); end $$`],
    expect: { object: /^database /, role: /^authenticated$/, why: /create schemas/ },
  },
  {
    name: 'default privileges granting future tables in api to authenticated',
    sql: ['alter default privileges in schema api grant select on tables to authenticated'],
    expect: { object: /^default privileges of .+ in schema api on tables$/, role: /^authenticated$/ },
  },
  {
    name: "default privileges giving the owner's future functions to PUBLIC again",
    sql: ['alter default privileges grant execute on functions to public'],
    expect: { object: /^default privileges of .+ on functions$/, role: /^PUBLIC$/ },
  },
];
