DROP TABLE analysis_quota;
DROP TABLE analyses;
