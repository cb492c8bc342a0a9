-- The benchmarks' realistic table: text of many lengths with NULLs,
-- integers, numerics, timestamps in random order (so index builds really
-- sort) and a jsonb document; seeded, so every run builds the same rows.
-- Placeholders, filled by each benchmark: {rows}, {desc_repeats},
-- {desc_spread}, {extra_attrs}.
SELECT setseed(0.42);
CREATE TABLE items (
    id bigint NOT NULL,
    sku text NOT NULL,
    title text NOT NULL,
    description text,
    quantity integer NOT NULL,
    price numeric(10, 2) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    attrs jsonb NOT NULL
);
INSERT INTO items (id, sku, title, description, quantity, price, created_at, updated_at, attrs)
SELECT g,
       'SKU-' || lpad(g::text, 8, '0'),
       initcap(left(md5(g::text), 6 + g % 27)),
       CASE WHEN g % 10 = 0 THEN NULL
            ELSE left(repeat(md5(random()::text), {desc_repeats}), 16 + (random() * {desc_spread})::int) END,
       (random() * 1000)::int,
       round((random() * 500)::numeric, 2),
       ts,
       CASE WHEN g % 4 = 0 THEN NULL ELSE ts + random() * interval '90 days' END,
       jsonb_build_object(
           'color', (ARRAY['red', 'green', 'blue', 'black', 'white'])[1 + g % 5],
           'weight', round((random() * 20)::numeric, 3),
           'active', g % 3 <> 0,
           'tags', jsonb_build_array(left(md5((g * 7)::text), 5), left(md5((g * 13)::text), 7)){extra_attrs}
       )
FROM (SELECT g, timestamptz '2020-01-01 00:00:00+00' + random() * interval '5 years' AS ts
      FROM generate_series(1, {rows}) AS g) AS s;
ALTER TABLE items ADD PRIMARY KEY (id);
