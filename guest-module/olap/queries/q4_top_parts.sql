-- Group-by over a high-cardinality key, top-N.
SELECT part, sum(quantity) AS q FROM lineitem GROUP BY part ORDER BY q DESC, part LIMIT 10;
