-- migrate:up

-- The gateway refuses to start (and /health/ready answers 503) until every
-- migration it was built with is applied. dbmate records them in
-- public.schema_migrations, which belongs to the owner; authenticator holds no
-- table privileges of its own, so it reads the versions through this one
-- function and nothing else. It lives in public, outside the schema that
-- PostgREST exposes, and returns version numbers only.
--
-- It runs as task_probe, the NOLOGIN role that already answers "does this
-- exist?" past what the caller may read, never as the owner (a superuser
-- locally): task_probe may read the version column of schema_migrations and
-- nothing else there.
grant select (version) on public.schema_migrations to task_probe;

create function public.task_api_schema_versions()
  returns text[]
  language sql
  stable
  security definer
  set search_path = pg_catalog, pg_temp
as $$
  select coalesce(array_agg(version::text order by version), '{}')
    from public.schema_migrations
$$;

comment on function public.task_api_schema_versions() is
  'Applied dbmate migration versions, for the gateway''s start-up and readiness checks.';

-- The new owner needs CREATE on the schema for the hand-over (and only then).
grant create on schema public to task_probe;
alter function public.task_api_schema_versions() owner to task_probe;
revoke create on schema public from task_probe;

revoke all on function public.task_api_schema_versions() from public;
grant execute on function public.task_api_schema_versions() to authenticator;

-- migrate:down

drop function public.task_api_schema_versions();
revoke select (version) on public.schema_migrations from task_probe;
