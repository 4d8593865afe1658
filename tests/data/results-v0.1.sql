-- The results database written by bnextbench 0.1 (commit 472ef1a: a 3-trial search on digits), as `.dump` text.
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('v3.2.0.a');
CREATE TABLE epoch_metrics (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	epoch INTEGER NOT NULL, 
	train_loss FLOAT NOT NULL, 
	train_top1 FLOAT NOT NULL, 
	test_loss FLOAT NOT NULL, 
	test_top1 FLOAT NOT NULL, 
	test_top5 FLOAT NOT NULL, 
	lr FLOAT NOT NULL, 
	tau FLOAT NOT NULL, 
	seconds FLOAT NOT NULL, 
	images_per_s FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO "epoch_metrics" VALUES(1,1,0,3.80519080162048339843e+00,7.5,2.26520029703776026863e+00,1.86111111111111107163e+01,6.05555555555555571336e+01,0.002,1.0,1.18640890130009211132e+01,1.01145566143764984443e+01);
INSERT INTO "epoch_metrics" VALUES(2,1,1,3.28847519556681300301e+00,22.5,5.49987623426649285818e+00,1.22222222222222214331e+01,5.5277777777777778569e+01,1.00005000000000015755e-03,9.999999999999987366e-15,1.23161918710011377699e+01,9.7432713988926877846e+00);
INSERT INTO "epoch_metrics" VALUES(3,2,0,2.94861419995625828605e+00,1.91666666666666678509e+01,2.29657440185546857236e+00,1.58333333333333339254e+01,5.97222222222222214309e+01,0.002,1.0,7.33463983500041649676e+00,1.63607215486393648968e+01);
INSERT INTO "epoch_metrics" VALUES(4,2,1,2.72321438789367675781e+00,2.41666666666666678513e+01,3.6289679633246527679e+00,1.02777777777777785668e+01,5.16666666666666642973e+01,1.00005000000000015755e-03,9.999999999999987366e-15,5.32118966199959686491e+00,2.25513480297385981998e+01);
INSERT INTO "epoch_metrics" VALUES(5,3,0,3.37797967592875147957e+00,12.5,2.30664198133680553581e+00,1.44444444444444446422e+01,5.0277777777777778569e+01,0.002,1.0,1.37588807609990908535e+01,8.72163965110824);
INSERT INTO "epoch_metrics" VALUES(6,3,1,2.6147747039794921875e+00,1.8333333333333332149e+01,6.94620157877604160745e+00,1.02777777777777785668e+01,5.19444444444444428663e+01,1.00005000000000015755e-03,9.999999999999987366e-15,1.08572349660007603231e+01,1.10525378124152133811e+01);
CREATE TABLE runs (
	id INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	model VARCHAR(64) NOT NULL, 
	arch_spec JSON, 
	arch_hash VARCHAR(32), 
	data VARCHAR(512) NOT NULL, 
	resolution INTEGER NOT NULL, 
	num_classes INTEGER NOT NULL, 
	recipe JSON NOT NULL, 
	seed INTEGER NOT NULL, 
	teacher VARCHAR(512), 
	device VARCHAR(64) NOT NULL, 
	versions JSON NOT NULL, 
	git_commit VARCHAR(64), 
	host VARCHAR(255) NOT NULL, 
	pid INTEGER NOT NULL, 
	checkpoint VARCHAR(1024), 
	epochs_planned INTEGER NOT NULL, 
	epochs_done INTEGER NOT NULL, 
	top1 FLOAT, 
	top5 FLOAT, 
	train_images_per_s FLOAT, 
	complexity JSON, 
	message VARCHAR(2048), 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES(1,'completed','bnext-spec-0a0c033fdcb3cdc3','{"stem_width": 16, "stage_widths": [16, 16, 64, 128, 256], "stage_depths": [1, 1, 2, 2, 1], "elm_attention": [false, false, false, false, false, false, false], "info_recoupling": [true, false, false, false, true, true, true], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}','0a0c033fdcb3cdc3','digits',16,10,'{"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1, "train_limit": 120, "width_mult": 1.0, "model_kwargs": {}, "candidate": "7b455c59a707b5ca", "protocol": {"data": "digits", "resolution": 16, "train_limit": 120, "recipe": {"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1}}, "study": "v0.1"}',1,NULL,'cpu','{"bnextbench": "0.1.0", "torch": "2.14.1", "timm": "1.0.31", "torchvision": "0.29.1"}',NULL,'vm',23554,'results/checkpoints/v0.1/trial-0/last.pt',2,2,1.22222222222222214331e+01,5.5277777777777778569e+01,9.92891400663459222641e+00,'{"model": "BNext", "resolution": 16, "num_classes": 10, "ops_rule": "bits", "params": 474598, "binary_params": 438528, "bops": 2543616, "flops": 136832.0, "ops": 176576.0, "binarization_degree": 0.22508155128669807, "size_mib": 0.18987274169921875, "macs_by_precision": {"w8a8": 136832, "w1a1": 2543616}}',NULL,'2026-11-26 15:09:17.882808','2026-11-26 15:09:46.666643');
INSERT INTO "runs" VALUES(2,'completed','bnext-spec-4649c2db11d0ad47','{"stem_width": 16, "stage_widths": [16, 16, 64, 128, 128], "stage_depths": [1, 1, 1, 2, 1], "elm_attention": [false, true, false, false, false, false], "info_recoupling": [true, false, true, true, true, true], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}','4649c2db11d0ad47','digits',16,10,'{"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1, "train_limit": 120, "width_mult": 1.0, "model_kwargs": {}, "candidate": "427d35e9035c8cab", "protocol": {"data": "digits", "resolution": 16, "train_limit": 120, "recipe": {"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1}}, "study": "v0.1"}',1,NULL,'cpu','{"bnextbench": "0.1.0", "torch": "2.14.1", "timm": "1.0.31", "torchvision": "0.29.1"}',NULL,'vm',23554,'results/checkpoints/v0.1/trial-1/last.pt',2,2,1.02777777777777785668e+01,5.16666666666666642973e+01,1.94560347891889833249e+01,'{"model": "BNext", "resolution": 16, "num_classes": 10, "ops_rule": "bits", "params": 410624, "binary_params": 381184, "bops": 1871872, "flops": 131776.0, "ops": 161024.0, "binarization_degree": 0.18163751987281399, "size_mib": 0.157745361328125, "macs_by_precision": {"w8a8": 131776, "w1a1": 1871872}}',NULL,'2026-11-26 15:09:47.419761','2026-11-26 15:10:04.111093');
INSERT INTO "runs" VALUES(3,'completed','bnext-spec-8f534ce4b9a8427b','{"stem_width": 16, "stage_widths": [8, 16, 32, 64, 128], "stage_depths": [1, 1, 2, 2, 1], "elm_attention": [false, false, false, false, false, true, false], "info_recoupling": [false, false, true, true, true, true, false], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}','8f534ce4b9a8427b','digits',16,10,'{"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1, "train_limit": 120, "width_mult": 1.0, "model_kwargs": {}, "candidate": "c70ebc24068df347", "protocol": {"data": "digits", "resolution": 16, "train_limit": 120, "recipe": {"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1}}, "study": "v0.1"}',1,NULL,'cpu','{"bnextbench": "0.1.0", "torch": "2.14.1", "timm": "1.0.31", "torchvision": "0.29.1"}',NULL,'vm',23554,'results/checkpoints/v0.1/trial-2/last.pt',2,2,1.02777777777777785668e+01,5.19444444444444428663e+01,9.88708873176172708951e+00,'{"model": "BNext", "resolution": 16, "num_classes": 10, "ops_rule": "bits", "params": 123172, "binary_params": 113472, "bops": 1130496, "flops": 115392.0, "ops": 133056.0, "binarization_degree": 0.13275613275613277, "size_mib": 0.05052947998046875, "macs_by_precision": {"w8a8": 115392, "w1a1": 1130496}}',NULL,'2026-11-26 15:10:05.005241','2026-11-26 15:10:33.585223');
CREATE TABLE search_trials (
	id INTEGER NOT NULL, 
	study VARCHAR(255) NOT NULL, 
	trial_number INTEGER NOT NULL, 
	candidate_hash VARCHAR(32) NOT NULL, 
	candidate JSON NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	run_id INTEGER, 
	bops INTEGER NOT NULL, 
	flops FLOAT NOT NULL, 
	ops FLOAT NOT NULL, 
	params INTEGER NOT NULL, 
	top1 FLOAT, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO "search_trials" VALUES(1,'v0.1',0,'7b455c59a707b5ca','{"family": "bnext", "spec": {"stem_width": 16, "stage_widths": [16, 16, 64, 128, 256], "stage_depths": [1, 1, 2, 2, 1], "elm_attention": [false, false, false, false, false, false, false], "info_recoupling": [true, false, false, false, true, true, true], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}}','complete',1,2543616,136832.0,176576.0,474598,1.22222222222222214331e+01,'2026-11-26 15:09:46.685011');
INSERT INTO "search_trials" VALUES(2,'v0.1',1,'427d35e9035c8cab','{"family": "bnext", "spec": {"stem_width": 16, "stage_widths": [16, 16, 64, 128, 128], "stage_depths": [1, 1, 1, 2, 1], "elm_attention": [false, true, false, false, false, false], "info_recoupling": [true, false, true, true, true, true], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}}','complete',2,1871872,131776.0,161024.0,410624,1.02777777777777785668e+01,'2026-11-26 15:10:04.166552');
INSERT INTO "search_trials" VALUES(3,'v0.1',2,'c70ebc24068df347','{"family": "bnext", "spec": {"stem_width": 16, "stage_widths": [8, 16, 32, 64, 128], "stage_depths": [1, 1, 2, 2, 1], "elm_attention": [false, false, false, false, false, true, false], "info_recoupling": [false, false, true, true, true, true, false], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}}','complete',3,1130496,115392.0,133056.0,123172,1.02777777777777785668e+01,'2026-11-26 15:10:33.646347');
CREATE TABLE studies (
	study_id INTEGER NOT NULL, 
	study_name VARCHAR(512) NOT NULL, 
	PRIMARY KEY (study_id)
);
INSERT INTO "studies" VALUES(1,'v0.1');
CREATE TABLE study_directions (
	study_direction_id INTEGER NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	study_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	PRIMARY KEY (study_direction_id), 
	UNIQUE (study_id, objective), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "study_directions" VALUES(1,'MAXIMIZE',1,0);
CREATE TABLE study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_system_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_user_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "study_user_attributes" VALUES(1,1,'space','"{\"base\":\"bnext_tiny\",\"depth\":[[1],[1],[1,2],[1,2],[1]],\"elm_attention\":[true,false],\"family\":\"bnext\",\"info_recoupling\":[true,false],\"stem_width\":[8,16],\"width_mult\":[0.125,0.25]}"');
INSERT INTO "study_user_attributes" VALUES(2,1,'protocol','{"data": "digits", "resolution": 16, "train_limit": 120, "recipe": {"epochs": 2, "batch_size": 40, "lr": 0.002, "warmup_epochs": 0, "warmup_lr": 1e-05, "min_lr": 1e-07, "conv_weight_decay": 1e-08, "weight_decay": 0.001, "grad_clip": 5.0, "sign_at": 0.3, "tau_decay": null, "label_smoothing": 0.0, "augment": "cifar", "kd_weighting": "sample", "seed": 1}}');
INSERT INTO "study_user_attributes" VALUES(3,1,'budgets','["20MBOPs"]');
CREATE TABLE trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	heartbeat DATETIME NOT NULL, 
	PRIMARY KEY (trial_heartbeat_id), 
	UNIQUE (trial_id), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	intermediate_value FLOAT, 
	intermediate_value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_intermediate_value_id), 
	UNIQUE (trial_id, step), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_intermediate_values" VALUES(1,1,0,1.86111111111111107163e+01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(2,1,1,1.22222222222222214331e+01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(3,2,0,1.58333333333333339254e+01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(4,2,1,1.02777777777777785668e+01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(5,3,0,1.44444444444444446422e+01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(6,3,1,1.02777777777777785668e+01,'FINITE');
CREATE TABLE trial_params (
	param_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	param_name VARCHAR(512), 
	param_value FLOAT, 
	distribution_json TEXT, 
	PRIMARY KEY (param_id), 
	UNIQUE (trial_id, param_name), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_params" VALUES(1,1,'stem_width',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8, 16]}}');
INSERT INTO "trial_params" VALUES(2,1,'se_ratio',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8]}}');
INSERT INTO "trial_params" VALUES(3,1,'kernel_size',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [3]}}');
INSERT INTO "trial_params" VALUES(4,1,'aux_bits',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8]}}');
INSERT INTO "trial_params" VALUES(5,1,'width_mult_0',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(6,1,'width_mult_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(7,1,'width_mult_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(8,1,'width_mult_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(9,1,'width_mult_4',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(10,1,'depth_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(11,1,'depth_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(12,1,'depth_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1, 2]}}');
INSERT INTO "trial_params" VALUES(13,1,'depth_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1, 2]}}');
INSERT INTO "trial_params" VALUES(14,1,'depth_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(15,1,'elm_attention_0',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(16,1,'elm_attention_1',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(17,1,'elm_attention_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(18,1,'elm_attention_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(19,1,'elm_attention_4',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(20,1,'info_recoupling_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(21,1,'info_recoupling_1',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(22,1,'info_recoupling_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(23,1,'info_recoupling_3',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(24,1,'info_recoupling_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(25,2,'stem_width',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8, 16]}}');
INSERT INTO "trial_params" VALUES(26,2,'se_ratio',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8]}}');
INSERT INTO "trial_params" VALUES(27,2,'kernel_size',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [3]}}');
INSERT INTO "trial_params" VALUES(28,2,'aux_bits',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8]}}');
INSERT INTO "trial_params" VALUES(29,2,'width_mult_0',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(30,2,'width_mult_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(31,2,'width_mult_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(32,2,'width_mult_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(33,2,'width_mult_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(34,2,'depth_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(35,2,'depth_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(36,2,'depth_2',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1, 2]}}');
INSERT INTO "trial_params" VALUES(37,2,'depth_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1, 2]}}');
INSERT INTO "trial_params" VALUES(38,2,'depth_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(39,2,'elm_attention_0',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(40,2,'elm_attention_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(41,2,'elm_attention_2',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(42,2,'elm_attention_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(43,2,'elm_attention_4',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(44,2,'info_recoupling_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(45,2,'info_recoupling_1',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(46,2,'info_recoupling_2',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(47,2,'info_recoupling_3',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(48,2,'info_recoupling_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(49,3,'stem_width',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8, 16]}}');
INSERT INTO "trial_params" VALUES(50,3,'se_ratio',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8]}}');
INSERT INTO "trial_params" VALUES(51,3,'kernel_size',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [3]}}');
INSERT INTO "trial_params" VALUES(52,3,'aux_bits',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [8]}}');
INSERT INTO "trial_params" VALUES(53,3,'width_mult_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(54,3,'width_mult_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(55,3,'width_mult_2',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(56,3,'width_mult_3',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(57,3,'width_mult_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.125, 0.25]}}');
INSERT INTO "trial_params" VALUES(58,3,'depth_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(59,3,'depth_1',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(60,3,'depth_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1, 2]}}');
INSERT INTO "trial_params" VALUES(61,3,'depth_3',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1, 2]}}');
INSERT INTO "trial_params" VALUES(62,3,'depth_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [1]}}');
INSERT INTO "trial_params" VALUES(63,3,'elm_attention_0',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(64,3,'elm_attention_1',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(65,3,'elm_attention_2',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(66,3,'elm_attention_3',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(67,3,'elm_attention_4',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(68,3,'info_recoupling_0',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(69,3,'info_recoupling_1',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(70,3,'info_recoupling_2',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(71,3,'info_recoupling_3',0.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
INSERT INTO "trial_params" VALUES(72,3,'info_recoupling_4',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [true, false]}}');
CREATE TABLE trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_system_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_user_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_user_attributes" VALUES(1,1,'pid','23554');
INSERT INTO "trial_user_attributes" VALUES(2,1,'host','"vm"');
INSERT INTO "trial_user_attributes" VALUES(3,1,'candidate','{"family": "bnext", "spec": {"stem_width": 16, "stage_widths": [16, 16, 64, 128, 256], "stage_depths": [1, 1, 2, 2, 1], "elm_attention": [false, false, false, false, false, false, false], "info_recoupling": [true, false, false, false, true, true, true], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}}');
INSERT INTO "trial_user_attributes" VALUES(4,1,'hash','"7b455c59a707b5ca"');
INSERT INTO "trial_user_attributes" VALUES(5,1,'bops','2543616');
INSERT INTO "trial_user_attributes" VALUES(6,1,'flops','136832.0');
INSERT INTO "trial_user_attributes" VALUES(7,1,'ops','176576.0');
INSERT INTO "trial_user_attributes" VALUES(8,1,'params','474598');
INSERT INTO "trial_user_attributes" VALUES(9,1,'run_id','1');
INSERT INTO "trial_user_attributes" VALUES(10,1,'top1','12.222222222222221');
INSERT INTO "trial_user_attributes" VALUES(11,1,'train_seconds','29.054627028999676');
INSERT INTO "trial_user_attributes" VALUES(12,2,'pid','23554');
INSERT INTO "trial_user_attributes" VALUES(13,2,'host','"vm"');
INSERT INTO "trial_user_attributes" VALUES(14,2,'candidate','{"family": "bnext", "spec": {"stem_width": 16, "stage_widths": [16, 16, 64, 128, 128], "stage_depths": [1, 1, 1, 2, 1], "elm_attention": [false, true, false, false, false, false], "info_recoupling": [true, false, true, true, true, true], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}}');
INSERT INTO "trial_user_attributes" VALUES(15,2,'hash','"427d35e9035c8cab"');
INSERT INTO "trial_user_attributes" VALUES(16,2,'bops','1871872');
INSERT INTO "trial_user_attributes" VALUES(17,2,'flops','131776.0');
INSERT INTO "trial_user_attributes" VALUES(18,2,'ops','161024.0');
INSERT INTO "trial_user_attributes" VALUES(19,2,'params','410624');
INSERT INTO "trial_user_attributes" VALUES(20,2,'run_id','2');
INSERT INTO "trial_user_attributes" VALUES(21,2,'top1','10.277777777777779');
INSERT INTO "trial_user_attributes" VALUES(22,2,'train_seconds','16.855168994999985');
INSERT INTO "trial_user_attributes" VALUES(23,3,'pid','23554');
INSERT INTO "trial_user_attributes" VALUES(24,3,'host','"vm"');
INSERT INTO "trial_user_attributes" VALUES(25,3,'candidate','{"family": "bnext", "spec": {"stem_width": 16, "stage_widths": [8, 16, 32, 64, 128], "stage_depths": [1, 1, 2, 2, 1], "elm_attention": [false, false, false, false, false, true, false], "info_recoupling": [false, false, true, true, true, true, false], "se_ratio": 8, "kernel_size": 3, "stem_stride": 1, "num_classes": 10, "aux_bits": 8}}');
INSERT INTO "trial_user_attributes" VALUES(26,3,'hash','"c70ebc24068df347"');
INSERT INTO "trial_user_attributes" VALUES(27,3,'bops','1130496');
INSERT INTO "trial_user_attributes" VALUES(28,3,'flops','115392.0');
INSERT INTO "trial_user_attributes" VALUES(29,3,'ops','133056.0');
INSERT INTO "trial_user_attributes" VALUES(30,3,'params','123172');
INSERT INTO "trial_user_attributes" VALUES(31,3,'run_id','3');
INSERT INTO "trial_user_attributes" VALUES(32,3,'top1','10.277777777777779');
INSERT INTO "trial_user_attributes" VALUES(33,3,'train_seconds','28.805989751999732');
CREATE TABLE trial_values (
	trial_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	value FLOAT, 
	value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_value_id), 
	UNIQUE (trial_id, objective), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_values" VALUES(1,1,0,1.22222222222222214331e+01,'FINITE');
INSERT INTO "trial_values" VALUES(2,2,0,1.02777777777777785668e+01,'FINITE');
INSERT INTO "trial_values" VALUES(3,3,0,1.02777777777777785668e+01,'FINITE');
CREATE TABLE trials (
	trial_id INTEGER NOT NULL, 
	number INTEGER, 
	study_id INTEGER, 
	state VARCHAR(8) NOT NULL, 
	datetime_start DATETIME, 
	datetime_complete DATETIME, 
	PRIMARY KEY (trial_id), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "trials" VALUES(1,0,1,'COMPLETE','2026-11-26 15:09:16.867791','2026-11-26 15:09:46.699234');
INSERT INTO "trials" VALUES(2,1,1,'COMPLETE','2026-11-26 15:09:46.744970','2026-11-26 15:10:04.197215');
INSERT INTO "trials" VALUES(3,2,1,'COMPLETE','2026-11-26 15:10:04.254679','2026-11-26 15:10:33.673114');
CREATE TABLE version_info (
	version_info_id INTEGER NOT NULL, 
	schema_version INTEGER, 
	library_version VARCHAR(256), 
	PRIMARY KEY (version_info_id), 
	CHECK (version_info_id=1)
);
INSERT INTO "version_info" VALUES(1,12,'5.0.0');
CREATE INDEX ix_epoch_metrics_run_id ON epoch_metrics (run_id);
CREATE INDEX ix_search_trials_study ON search_trials (study);
CREATE INDEX ix_search_trials_candidate_hash ON search_trials (candidate_hash);
CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name);
CREATE INDEX ix_trials_study_id ON trials (study_id);
COMMIT;
