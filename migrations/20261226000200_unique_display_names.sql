-- Admin menus, the catalog and plan choices list APIs and plans by name, so two with one
-- name (ignoring case and surrounding spaces) cannot be told apart. Existing repeats keep
-- their first holder's name; later ones get their slug or system name added.
UPDATE api_products p
   SET name = left(btrim(p.name), 130) || ' (' || p.slug || ')'
  FROM (SELECT id, row_number() OVER (PARTITION BY lower(btrim(name)) ORDER BY created_at, id) AS n
          FROM api_products) d
 WHERE d.id = p.id AND d.n > 1;
CREATE UNIQUE INDEX api_products_name_key ON api_products (lower(btrim(name)));

UPDATE plans p
   SET name = left(btrim(p.name), 130) || ' (' || p.system_name || ')'
  FROM (SELECT id, row_number() OVER (PARTITION BY api_id, lower(btrim(name)) ORDER BY created_at, id) AS n
          FROM plans) d
 WHERE d.id = p.id AND d.n > 1;
CREATE UNIQUE INDEX plans_api_name_key ON plans (api_id, lower(btrim(name)));
