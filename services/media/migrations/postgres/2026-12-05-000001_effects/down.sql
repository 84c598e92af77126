DROP TABLE effect_allowance;
DROP TABLE effect_runs;
DROP TABLE effects;
