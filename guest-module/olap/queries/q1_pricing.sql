-- Scan + group-by over all lineitems (TPC-H Q1 in spirit).
SELECT quantity % 10 AS bucket, count(*), round(sum(price), 2),
       round(sum(price * (1 - discount)), 2), round(avg(discount), 4)
FROM lineitem GROUP BY bucket ORDER BY bucket;
