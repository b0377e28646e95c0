"""barberpro_ml.scoring"""
