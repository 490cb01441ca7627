-- Full scan with a string predicate.
SELECT count(*), sum(quantity) FROM lineitem WHERE comment LIKE '%special req%';
