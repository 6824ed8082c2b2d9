"""imgclf.data"""
