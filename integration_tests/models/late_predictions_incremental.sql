-- An incremental model: each run scores only the months not scored yet.
{{ config(materialized='incremental', unique_key=['month', 'sched_dep_time', 'carrier', 'origin', 'distance', 'dep_delay']) }}

{% set source %}
select * from {{ ref('flights_recent') }}
{% if is_incremental() %} where month > (select max(month) from {{ this }}) {% endif %}
{% endset %}
select month, sched_dep_time, carrier, origin, distance, dep_delay, is_late, predicted_is_late
from {{ sqlml.predict(ref('delay_model'), source) }}
