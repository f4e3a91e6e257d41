-- A plain dbt table over the sqlml view: its reads score with the plugin's functions.
{{ config(materialized='table') }}

select species, predicted_species, count(*) as penguins
from {{ ref('penguin_species_scored') }}
where body_mass_g is not null
group by all
