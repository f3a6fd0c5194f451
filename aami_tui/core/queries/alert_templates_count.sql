SELECT count(*) AS n FROM public.alert_templates
WHERE id IN ('high_cpu_usage', 'high_memory_usage', 'low_disk_space',
             'node_down', 'high_gpu_temperature', 'high_gpu_memory')
