-- A quality gate: the build fails when the weight model explains less than 80 % of the variance
-- (BigQuery publishes r2_score ≈ 0.87 for this model).
select * from {{ ref('penguin_weight') }} where r2_score < 0.8
