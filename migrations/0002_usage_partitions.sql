-- 0002_usage_partitions.sql: monthly partitions for usage_events, made ahead of time so that
-- events land in their month's partition rather than the default one.
-- `tollgate-control migrate` (and serve, which migrates first) calls it on every start.
CREATE FUNCTION usage_ensure_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    m date;
    name text;
    made integer := 0;
BEGIN
    FOR i IN 0..months_ahead LOOP
        m := (first + make_interval(months => i))::date;
        name := format('usage_events_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                           name, m::timestamptz, (m + interval '1 month')::timestamptz);
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;
